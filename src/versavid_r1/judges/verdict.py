"""Strict parsing of the judge model's reply (never of the policy's answer).

The judge is asked for a bare verdict. A reply counts only if, after removing *trivial wrappers*, it
is exactly one allowed value:

- DarkEventInfer: ``0``, ``1`` or ``2``.
- MixVidQA: ``True`` or ``False`` (any letter case).

Trivial wrappers (the decision documented here and in the README):

- surrounding whitespace, quotes, backticks, markdown emphasis ``*``/``_`` and brackets
  (``"2"``, ```2```, ``**2**``, ``[2]``, ``(True)``);
- one trailing full stop (``2.``, ``False.``);
- one leading label, optionally followed by ``:``, ``=``, ``-`` or ``is``:
  score, rating, grade, verdict, answer, judgement/judgment, with an optional "final"/"the"
  (``Score: 2``, ``Final score is 2``, ``Verdict: True``);
- DarkEventInfer only: a trailing ``/2`` or ``out of 2`` (``2/2``, ``Score: 1 out of 2``).

Everything else is ``unparseable`` (scores 0, counted, raw text returned): explanations after the
value, hedges ("2 or 1", "probably 2"), several values ("not 2 ... score 1"), other numbers ("3",
"02"), yes/no, empty replies. The original project took "any '2' in the reply, else any '1'", which
scores "not 2, score 1" as 2 and can be steered by text the judge quotes; this parser cannot.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..protocol import UNPARSEABLE
from ..tasks import DARK_EVENT_INFER, MIX_VID_QA

_WRAP_OPEN = " \t\r\n\"'`*_[(“‘"
_WRAP_CLOSE = " \t\r\n\"'`*_])”’"
_LABEL = re.compile(
    r"^(?:the\s+)?(?:final\s+)?(?:score|rating|grade|verdict|answer|judgement|judgment)\b"
    r"\s*(?:is\b)?\s*[:=\-]?\s*",
    re.IGNORECASE,
)
_OUT_OF_TWO = re.compile(r"\s*(?:/\s*2|out\s+of\s+2)$", re.IGNORECASE)


def _unwrap(text: str) -> str:
    s = text.strip(_WRAP_OPEN + _WRAP_CLOSE)
    if s.endswith("."):
        s = s[:-1]
    return s.strip(_WRAP_OPEN + _WRAP_CLOSE)


def _core(reply: Optional[str]) -> str:
    if not isinstance(reply, str):
        return ""
    s = _unwrap(reply)
    m = _LABEL.match(s)
    if m and m.end() < len(s):
        s = _unwrap(s[m.end():])
    return s


def parse_dei_verdict(reply: Optional[str]) -> Optional[int]:
    """0, 1 or 2 for a clean DarkEventInfer verdict, else None."""
    s = _core(reply)
    s = _unwrap(_OUT_OF_TWO.sub("", s)) if _OUT_OF_TWO.search(s) else s
    return int(s) if s in ("0", "1", "2") else None


def parse_mixvidqa_verdict(reply: Optional[str]) -> Optional[bool]:
    """True/False for a clean MixVidQA verdict, else None."""
    s = _core(reply).lower()
    if s == "true":
        return True
    if s == "false":
        return False
    return None


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
