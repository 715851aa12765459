"""Strict parsing of the judge model's reply (never of the policy's answer).

The judge is asked for a bare verdict. A reply counts only if it *leads* with exactly one allowed
value, after removing trivial wrappers, and whatever follows is an explanation, not a second opinion:

- DarkEventInfer: ``0``, ``1`` or ``2``.
- MixVidQA: ``True`` or ``False`` (any letter case).

Trivial wrappers (the decision documented here and in docs/judges.md, "How verdicts are made"):

- surrounding whitespace, quotes, backticks, markdown emphasis ``*``/``_`` and brackets
  (``"2"``, ```2```, ``**2**``, ``[2]``, ``(True)``);
- one trailing full stop (``2.``, ``False.``);
- one leading label, optionally followed by ``:``, ``=``, ``-`` or ``is``:
  score, rating, grade, verdict, answer, judgement/judgment, with an optional "final"/"the"
  (``Score: 2``, ``Final score is 2``, ``Verdict: True``);
- DarkEventInfer only: a trailing ``/2`` or ``out of 2`` (``2/2``, ``Score: 1 out of 2``).

A verdict may be followed by an explanation when a clear break separates them: a new line, a
sentence end (``2. The prediction ...``), a dash (``Score: 2 — the response ...``), a colon, a
semicolon or a comma (``True, the answer ...``). The explanation's first clause (up to its first
sentence end or line break) must not make the verdict ambiguous: another allowed value (``2, maybe
1``, ``False, but partly True``) or a hedge word (or, maybe, perhaps, probably, possibly, mostly,
partly, ...) there makes the whole reply ``unparseable``, except the rubric's own words after a
DarkEventInfer 1 (``1 - the prediction partially covers the event``). Later sentences are not read.

Everything else is ``unparseable`` (a judge failure: the client skips and counts it): a verdict not
at the start (``not 2 ... score 1``, ``I think 2``), hedges (``1 or 2``, ``probably 2``), other
numbers (``3``, ``02``, ``2.5``), yes/no, empty replies. The original project took "any '2' in the
reply, else any '1'", which scores "not 2, score 1" as 2 and can be steered by text the judge
quotes; this parser cannot. The prediction never reaches it: only the judge's reply is parsed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..protocol import UNPARSEABLE
from ..tasks import DARK_EVENT_INFER, MIX_VID_QA

_WRAP_OPEN = " \t\r\n\"'`*_[(“‘"
_LABEL = re.compile(
    r"^(?:the\s+)?(?:final\s+)?(?:score|rating|grade|verdict|answer|judgement|judgment)\b"
    r"\s*(?:is\b)?\s*[:=\-]?\s*",
    re.IGNORECASE,
)
_OUT_OF_TWO = re.compile(r"\s*(?:/\s*2|out\s+of\s+2)(?![\w.]*\d)", re.IGNORECASE)
# The leading verdict of each task; the lookahead keeps "02", "2.5", "Truee" and "2/3" out.
_DEI_HEAD = re.compile(r"([012])(?![\w.,]\d|\w)")
_MIX_HEAD = re.compile(r"(true|false)\b", re.IGNORECASE)
# What may separate a verdict from its explanation.
_CLOSERS = "\"'`*_])”’"
_BREAK = re.compile(r"(?:\s*\n|\.(?:\s|$)|\s*[—–]\s*|\s+-\s+|\s*[:;,]\s+|\s+\()")
_CLAUSE_END = re.compile(r"[.!?](?:\s|$)|\n")
_HEDGE = re.compile(
    r"\b(?:or|maybe|perhaps|probably|possibly|arguably|mostly|partly|partially|somewhat|almost|"
    r"unsure|uncertain|borderline)\b",
    re.IGNORECASE,
)
_DEI_VALUE = re.compile(r"(?<![\w.])[012](?![\w.]\d|\w)")
_MIX_VALUE = re.compile(r"\b(?:true|false)\b", re.IGNORECASE)


def _core(reply: Optional[str]) -> str:
    """The reply without leading wrappers and one leading label (trailing text is kept)."""
    if not isinstance(reply, str):
        return ""
    s = reply.lstrip(_WRAP_OPEN)
    m = _LABEL.match(s)
    if m and m.end() < len(s):
        s = s[m.end():].lstrip(_WRAP_OPEN)
    return s


# Words of the rubric itself: "1 = the prediction covers only part of the ground truth", so a score-1 reply
# that explains "the prediction partially covers it" does not hedge.
_RUBRIC_WORDS = {"1": ("partly", "partially")}


def _explanation_ok(rest: str, value: re.Pattern, verdict: str = "") -> bool:
    """True if `rest` (what follows the verdict) is nothing, or a clean break and an explanation
    whose first clause neither hedges nor names another verdict."""
    rest = rest.lstrip(_CLOSERS)
    if not rest.strip(" \t\r\n."):
        return True
    brk = _BREAK.match(rest)
    if not brk:
        return False
    tail = rest[brk.end():]
    end = _CLAUSE_END.search(tail)
    clause = tail[:end.start()] if end else tail
    hedges = [h for h in _HEDGE.findall(clause) if h.lower() not in _RUBRIC_WORDS.get(verdict, ())]
    return not (hedges or value.search(clause))


def _lead(reply: Optional[str], head: re.Pattern, value: re.Pattern) -> Optional[str]:
    s = _core(reply)
    m = head.match(s)
    if not m:
        return None
    rest = s[m.end():]
    if head is _DEI_HEAD:
        rest = _OUT_OF_TWO.sub("", rest, count=1) if _OUT_OF_TWO.match(rest) else rest
    verdict = m.group(1) if head is _DEI_HEAD else ""
    return m.group(1) if _explanation_ok(rest, value, verdict) else None


def parse_dei_verdict(reply: Optional[str]) -> Optional[int]:
    """0, 1 or 2 for a reply that leads with a clean DarkEventInfer verdict, else None."""
    v = _lead(reply, _DEI_HEAD, _DEI_VALUE)
    return None if v is None else int(v)


def parse_mixvidqa_verdict(reply: Optional[str]) -> Optional[bool]:
    """True/False for a reply that leads with a clean MixVidQA verdict, else None."""
    v = _lead(reply, _MIX_HEAD, _MIX_VALUE)
    return None if v is None else v.lower() == "true"


@dataclass(frozen=True)
class Verdict:
    score: float
    label: str          # "0" | "1" | "2" | "True" | "False" | UNPARSEABLE

    @property
    def parsed(self) -> bool:
        return self.label != UNPARSEABLE


def parse_verdict(problem_type: str, reply: Optional[str]) -> Verdict:
    """Score and label of a judge reply for `problem_type` (DarkEventInfer 0-2, MixVidQA 0/1)."""
    if problem_type == DARK_EVENT_INFER:
        v = parse_dei_verdict(reply)
        return Verdict(0.0, UNPARSEABLE) if v is None else Verdict(float(v), str(v))
    if problem_type == MIX_VID_QA:
        b = parse_mixvidqa_verdict(reply)
        return Verdict(0.0, UNPARSEABLE) if b is None else Verdict(float(b), "True" if b else "False")
    raise ValueError(f"the Qwen2.5 judge does not score problem_type {problem_type!r}")
