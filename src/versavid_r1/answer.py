"""Pulling the final answer out of a `<think>…</think><answer>…</answer>` completion.

Shared by the rewards (training side) and the judge services, so both read answers the same way.
Tags are matched case-sensitively, like the format gate.
"""
from __future__ import annotations

ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"


def extract_answer(text: str) -> str:
    """Text inside the first `<answer>` up to the next `</answer>` (optional), stripped; "" if none."""
    if not isinstance(text, str):
        return ""
    start = text.find(ANSWER_OPEN)
    if start < 0:
        return ""
    rest = text[start + len(ANSWER_OPEN):]
    end = rest.find(ANSWER_CLOSE)
    return (rest if end < 0 else rest[:end]).strip()


def wrap_answer(answer: str) -> str:
    """The canonical `<answer>…</answer>` form in which the judges receive an extracted answer."""
    return f"{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"
