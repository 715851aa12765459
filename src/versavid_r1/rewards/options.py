"""Which option letters (A–G) an MCQA answer names, and the ground truth's letter.

**Every letter an answer names counts**, wherever and however it is written: "B or C", "Maybe C or B",
"I think it is C or B", "C (or B)", "B (or possibly C)", "B, but C is also possible", `\\boxed{B}` or
`\\boxed{C}`, options listed line by line, "B <answer>C" (a stray nested tag). The MCQA reward pays only
an answer that names exactly one letter, so no wording of a hedge between options can be paid. Instead of
a list of hedge patterns (which a policy searching for reward eventually gets around), the answer is
scanned for every single letter A–G that stands alone, i.e. is not part of a word:

- a letter inside a word ("Because", "C3", "he'd") or joined by a hyphen or an apostrophe to a longer word
  ("C-shaped", "E-mail", "D'Angelo") is no letter ("C's" is: "C's also possible"); neither are dotted
  abbreviations ("e.g.", "U.S.A.");
- a capital or small "a" followed by a word is the article ("A man opens the door") unless that word is one
  that follows a letter naming an option (`prompts.OPTION_REFERENCE_WORDS`: "A or C", "A is also possible")
  or a capital "A" is offered as an alternative ("B or A fits", "B, A fits", "maybe A");
- small letters count like capitals ("b or c"); look-alike letters of other scripts and full-width letters
  are folded to Latin first (`versavid_r1.confusables`: "C or В" with a Cyrillic "В" names B and C).

The price: an option whose own text holds a lone letter ("D. Both A and C", "B. Vitamin C") is only paid
when answered with its letter alone, which is what the prompt's option-letter line asks for
(docs/rewards.md).

The ground truth's letter is its first character when that is an option form (`leading_letters`: "B",
"B.", "(B)", "B. text", "\\boxed{B}", "Answer: B", …), as in the reference, which compares with the first
character of the ground truth.
"""
from __future__ import annotations

import re
from typing import Optional

from versavid_r1 import prompts
from versavid_r1.confusables import fold
from versavid_r1.rewards.format import answer_text

OPTION_LETTERS = "ABCDEFG"

_L = "A-Ga-g"
# Preambles before the letter: "The answer is", "Answer:", "Final answer: option", "Choice", …
_PREAMBLE = re.compile(
    r"^(?:(?:the\s+)?(?:correct\s+|final\s+|best\s+|right\s+)?(?:answer|option|choice)"
    r"(?:\s+is)?\s*[:：]?\s*(?:option\s+|choice\s+)?)?",
    re.IGNORECASE,
)
# One option form at the start of a string; the named group that matched holds the letter.
_FORM = re.compile(
    rf"\\boxed\{{\s*\(?(?P<b>[{_L}])\)?\s*\}}"
    rf"|\\text\{{\s*(?P<t>[{_L}])\s*\}}"
    rf"|\((?P<p>[{_L}])\)|\[(?P<s>[{_L}])\]|\{{(?P<c>[{_L}])\}}"
    rf"|(?P<l>[{_L}])(?=[.):：,;/&?!]|\s*$)",
)
_STRIP_CHARS = " \t\r\n*`'\"$"
# A single letter A–G that is not part of a longer word (checked further in `_names_option`).
_LONE = re.compile(rf"(?<!\w)[{_L}](?!\w)")
_WORD_AFTER = re.compile(r"[ \t]+([^\W\d_]{2,})")  # a word of two letters or more
_LONG_WORD_AFTER = re.compile(r"\w\w")
_LONG_WORD_BEFORE = re.compile(r"\w\w$")
_APOSTROPHE_S = re.compile(r"['’]s\b")
_JOINER_BEFORE = re.compile(
    r"(?:\b(?:or|and|nor|vs|versus|either|maybe|perhaps|possibly|probably|even|else|option|choice|letter)\W*"
    r"|[,;/&(][ \t]*)$", re.IGNORECASE)


def leading_letters(answer: str) -> list[str]:
    """The letter of the option form at the start of `answer` (after a preamble such as "Answer:"), as a
    one-element list, or [] when the answer does not start with one."""
    s = fold(answer).strip(_STRIP_CHARS)
    pre = _PREAMBLE.match(s)
    if pre:
        s = s[pre.end():].lstrip(_STRIP_CHARS)
    m = _FORM.match(s)
    if not m:
        return []
    return [next(m.group(g) for g in ("b", "t", "p", "s", "c", "l") if m.group(g)).upper()]


def _names_option(text: str, start: int) -> bool:
    """Does the lone letter at `text[start]` name an option (see the module docstring)?"""
    before, after = text[:start], text[start + 1:]
    if before[-1:] in "'’" and before[-2:-1].isalpha():
        return False  # "he'd"
    if after[:1] in "'’" and after[1:2].isalpha() and not (text[start].isupper() and _APOSTROPHE_S.match(after)):
        return False  # "D'Angelo", "d'Arc"; but "C's also possible" names C
    if after[:1] == "." and after[1:2].isalpha() or before[-1:] == "." and before[-2:-1].isalpha():
        return False  # "e.g.", "U.S.A."
    if after[:1] == "-" and _LONG_WORD_AFTER.match(after[1:]) or before[-1:] == "-" and \
            _LONG_WORD_BEFORE.search(before[:-1]):
        return False  # "C-shaped", "E-mail", "Type-C"
    if text[start] in "Aa":
        word = _WORD_AFTER.match(after)
        offered = text[start] == "A" and _JOINER_BEFORE.search(before)  # "B or A fits": offered as an option
        if word and word.group(1).lower() not in prompts.OPTION_REFERENCE_WORDS and not offered:
            return False  # the article: "A man opens the door"
    return True


def option_letters(answer: str) -> set[str]:
    """Every option letter `answer` names, upper case (see the module docstring)."""
    if not isinstance(answer, str) or not answer.strip():
        return set()
    text = fold(answer)
    return {m.group(0).upper() for m in _LONE.finditer(text) if _names_option(text, m.start())}


def ground_truth_letter(solution: str) -> Optional[str]:
    """The ground truth's option letter: its first character if that is an option form, else None."""
    letters = leading_letters(answer_text(solution))
    return letters[0] if letters else None
