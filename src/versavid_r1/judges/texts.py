"""Which text of a request the judges score (one rule for both services).

- A text holding `<answer>` is reduced to what is inside it (versavid_r1.answer.extract_answer).
- A completion with `<think>` tags but no `<answer>` has an empty answer (the policy never answered).
- A text with neither is taken whole, stripped (a bare answer or caption, e.g. from an eval script).
"""
from __future__ import annotations

from ..answer import ANSWER_OPEN, extract_answer


def answer_text(text: str) -> str:
    if not isinstance(text, str):
        return ""
    if ANSWER_OPEN in text:
        return extract_answer(text)
    if "<think>" in text or "</think>" in text:
        return ""
    return text.strip()
