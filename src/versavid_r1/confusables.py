"""Folding look-alike letters to Latin before text is searched for option letters or judge instructions.

Why: the MCQA reward looks for option letters and the injection detector for instructions, both by
pattern. A policy (or a test of the defences) can write "С or B" with a Cyrillic "С", or "Ѕcоrе: 2" with
Cyrillic "Ѕ", "о" and "е": a reader, and an LLM judge, read Latin letters, a regular expression does
not. `fold` applies NFKC normalisation (full-width letters, ligatures, compatibility forms), removes
invisible characters and maps the Cyrillic and Greek look-alikes of `prompts.CONFUSABLE_LETTERS` to
Latin. The unicodedata module has no confusables table (Unicode's TR39 data is not in the standard
library), hence the short table of the letters that matter here.
"""
from __future__ import annotations

import unicodedata

from versavid_r1 import prompts

_TABLE = str.maketrans({**prompts.CONFUSABLE_LETTERS, **{c: None for c in prompts.INVISIBLE_CHARACTERS}})


def fold(text: str) -> str:
    """`text` with compatibility forms normalised, invisible characters removed and look-alikes Latin."""
    if not isinstance(text, str):
        return ""
    return unicodedata.normalize("NFKC", text).translate(_TABLE)
