"""The answer-extraction rules of the benchmarks' own evaluation code, re-implemented (each function says
whose rule it is). Every function takes the model's reply text and returns the option letter it names,
or None when the rule finds none.

Where a benchmark's code picks a *random* option for an unparseable reply (LongVideoBench, the MMMU-style
parser lmms-eval uses for NExT-QA), `fallback_letter` picks one deterministically from the row id, so a
rerun scores the same and the expected score equals the benchmark's; records mark such answers
`official_parsed: false` and the summary counts them.
"""
from __future__ import annotations

import hashlib
import re
from typing import Optional, Sequence

from versavid_r1.prompts import MCQ_ANSWER_PREFIXES

LETTERS = "ABCDEFG"


def fallback_letter(row_id: str, n_options: int) -> str:
    """A letter among the first `n_options`, the same for the same row on every run (see the module doc)."""
    digest = hashlib.sha256(str(row_id).encode("utf-8")).digest()
    return LETTERS[int.from_bytes(digest[:4], "big") % n_options]


def first_letter_after_prefixes(text: str, letters: str) -> Optional[str]:
    """Video-MME's rule (its eval_your_results.py, `extract_characters_regex`; LongVideoBench's is the same
    with A-E): remove the answer phrases, give up on a reply of more than ten words without a capital option
    letter, else the first capital option letter anywhere ("Based on ..." reads as B, as in the original)."""
    s = (text or "").strip()
    for prefix in MCQ_ANSWER_PREFIXES:
        s = s.replace(prefix, "")
    found = re.search(f"[{letters}]", s)
    if len(s.split()) > 10 and not found:
        return None
    return found.group(0) if found else None


def mmmu_letter(text: str, options: Sequence[str]) -> Optional[str]:
    """The MMMU-style parser of lmms-eval's NExT-QA and Video-Holmes tasks (`parse_multi_choice_response`):
    "(X)" forms first, then "X " then "X."; failing those, on a reply of more than five words, an option's
    text; with several candidates the one occurring last wins."""
    choices = LETTERS[: len(options)]
    response = text or ""
    for ch in (",", ".", "!", "?", ";", ":", "'"):
        response = response.strip(ch)
    response = f" {response} "
    candidates = [c for c in choices if f"({c})" in response]
    bracketed = bool(candidates)
    if not candidates:
        candidates = [c for c in choices if f"{c} " in response]
    if not candidates:
        candidates = [c for c in choices if f"{c}." in response]
    by_text = False
    if not candidates and len(response.split()) > 5:
        candidates = [c for c, opt in zip(choices, options) if opt.lower() in response.lower()]
        by_text = bool(candidates)
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    if by_text:
        positions = [response.lower().rfind(options[choices.index(c)].lower()) for c in candidates]
    elif bracketed:
        positions = [response.rfind(f"({c})") for c in candidates]
    else:
        positions = [response.rfind(f" {c} ") for c in candidates]
    return candidates[max(range(len(candidates)), key=lambda k: (positions[k], -k))]


def holmes_letter(completion: str) -> Optional[str]:
    """Video-Holmes's rule (its evaluate.py): the text of the last <answer>…</answer> block (else the whole
    reply); the first letter A-F followed by a space or colon or preceded by "[", in letter order; else the
    first of A-F contained anywhere, in letter order."""
    blocks = re.findall(r"<answer>\s*(.*?)\s*</answer>", completion or "", re.DOTALL)
    choice = blocks[-1].strip() if blocks else (completion or "")
    for letter in "ABCDEF":
        if f"{letter} " in choice or f"{letter}:" in choice or f"[{letter}" in choice:
            return letter
    for letter in "ABCDEF":
        if letter in choice:
            return letter
    return None


def mvbench_match(answer: str, gt_letter: str) -> bool:
    """MVBench's `check_ans` (its evaluation notebook): the reply's first word, lower-cased and without
    periods, must occur in the ground truth's "(x)" option tag, or the tag in it. One deviation: an empty
    reply is wrong (the original accepts it, as "" occurs in every string)."""
    words = (answer or "").strip().lower().split(" ")
    first = words[0] if words else ""
    if not first:
        return False
    tag = f"({gt_letter.lower()})"
    return first.replace(".", "") in tag or tag in first
