"""Caption reward (docs/method.md): AutoDQ recall + 0.5 × precision + keyword term.

The keyword term follows the reference exactly, on the text inside `<answer>` (closing tag optional,
as `extract_answer` reads it); an empty or missing answer gives 0:

* start at 0; for each temporal phrase present (case-insensitive *substring*, so "then" also
  matches "authentic" and "first" matches "firstly"), add `TEMPORAL_BONUS` (0.2);
* then, for each hedge phrase present: clamp the running value to at most 0, then subtract
  `HEDGE_PENALTY` (0.2). So one hedge wipes out every temporal bonus, and h hedges give −0.2·h;
* finally cap at `KEYWORD_CAP` (0.4); there is no lower bound.

Each phrase counts once, however often it occurs. The phrase lists and constants are data in
`versavid_r1.prompts`, read from there only.
"""
from __future__ import annotations

import math
from typing import Any

from versavid_r1 import prompts
from versavid_r1.answer import extract_answer

# Range of the keyword term: at most the cap, at least one penalty per hedge phrase.
KEYWORD_MAX = prompts.KEYWORD_CAP
KEYWORD_MIN = -prompts.HEDGE_PENALTY * len(prompts.HEDGE_PHRASES)
CAPTION_MAX = 1.0 + 0.5 * 1.0 + KEYWORD_MAX


def keyword_reward(completion: Any) -> float:
    """The caption reward's keyword term of a completion (see module docstring)."""
    answer = extract_answer(completion) if isinstance(completion, str) else ""
    if not answer:
        return 0.0
    text = answer.lower()
    value = 0.0
    for phrase in prompts.TEMPORAL_PHRASES:
        if phrase in text:
            value += prompts.TEMPORAL_BONUS
    for phrase in prompts.HEDGE_PHRASES:
        if phrase in text:
            value = min(value, 0.0) - prompts.HEDGE_PENALTY
    # Rounding removes float noise (0.2 + 0.2 + 0.2 = 0.6000000000000001) so equal counts compare equal.
    return round(min(value, prompts.KEYWORD_CAP), 10)


def caption_reward(completion: Any, recall: float, precision: float) -> float:
    """recall + 0.5 × precision + keyword_reward(completion).

    `recall` and `precision` are AutoDQ's entailment shares in [0, 1] (from the caption judge).
    A value that is not a finite number in [0, 1] is a caller/judge bug and raises ValueError,
    rather than silently turning into a reward.
    """
    for name, v in (("recall", recall), ("precision", precision)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.0 <= v <= 1.0:
            raise ValueError(f"caption_reward: {name} must be a finite number in [0, 1], got {v!r}")
    return float(recall) + 0.5 * float(precision) + keyword_reward(completion)
