"""Content words of a text: what the lexical judge compares and what the decoy check keeps disjoint.

The **content words** of a text are its lower-cased runs of letters and digits, after look-alike letters
are folded to Latin (`versavid_r1.confusables`), minus single letters and `prompts.LEXICAL_STOP_WORDS`,
each cut by `stem` (one light suffix rule), as a set. Shared by the lexical judge backend
(`versavid_r1.judges.lexical`) and the decoy choice of the judge client (`versavid_r1.rewards.decoys`).
"""
from __future__ import annotations

import re

from versavid_r1 import prompts
from versavid_r1.confusables import fold

_WORD = re.compile(r"[a-z0-9]+")
# One suffix rule, the first that matches, only when at least this many letters remain.
_SUFFIXES = ("ing", "ed", "es", "s", "e")
_MIN_STEM = 3


def stem(word: str) -> str:
    """`word` without one inflection suffix (-ing, -ed, -es, -s but not -ss, -e), so that "moves",
    "moved", "moving" and "move" meet. A full stemmer (Porter, Snowball) would be a new dependency
    for what is needed here: inflections of the same word."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            if suffix == "s" and word.endswith("ss"):
                return word
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> frozenset[str]:
    """The stemmed content words of `text` (see the module docstring)."""
    words = _WORD.findall(fold(text).lower()) if isinstance(text, str) else []
    return frozenset(stem(w) for w in words
                     if (len(w) > 1 or w.isdigit()) and w not in prompts.LEXICAL_STOP_WORDS)
