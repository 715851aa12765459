"""Pulling the final answer out of a `<think>…</think><answer>…</answer>` completion.

Shared by the rewards (training side) and the judge services, so both read answers the same way.
Tags are matched case-sensitively, like the format gate.
"""
from __future__ import annotations

from typing import Optional

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


def answer_tag_problem(text: str) -> Optional[str]:
    """Why `text` is not a single `<answer>…</answer>` block (nested, repeated or unbalanced tags), or None.

    A ground truth such as `<answer><answer>yellow</answer></answer>` would reach the judges as
    `<answer>yellow`: the data checks and builders refuse it instead (`extract_answer` reads up to the
    first closing tag only).
    """
    opens, closes = text.count(ANSWER_OPEN), text.count(ANSWER_CLOSE)
    if opens == 1 and closes == 1 and text.find(ANSWER_OPEN) < text.find(ANSWER_CLOSE):
        return None
    if opens == 0 and closes == 0:
        return None
    first_open = text.find(ANSWER_OPEN)
    first_close = text.find(ANSWER_CLOSE, first_open + 1) if first_open >= 0 else -1
    second_open = text.find(ANSWER_OPEN, first_open + 1) if first_open >= 0 else -1
    if second_open >= 0 and (first_close < 0 or second_open < first_close):
        kind = "nested"
    elif opens >= 2 or closes >= 2:
        kind = "repeated"
    else:
        kind = "unbalanced"
    return (f"{kind} answer tags ({opens} '{ANSWER_OPEN}', {closes} '{ANSWER_CLOSE}'): the ground truth must be "
            f"one {ANSWER_OPEN}…{ANSWER_CLOSE} block")


def strip_answer_tags(text: str) -> str:
    """The answer text of a builder input: `text` itself, or what is inside it when it already is one
    `<answer>…</answer>` block (so the builder wraps it once). Raises ValueError for nested, repeated or
    unbalanced tags, or for text outside the one block."""
    problem = answer_tag_problem(text)
    if problem is not None:
        raise ValueError(problem)
    stripped = text.strip()
    if ANSWER_OPEN not in stripped:
        return stripped
    if not (stripped.startswith(ANSWER_OPEN) and stripped.endswith(ANSWER_CLOSE)):
        raise ValueError(f"text outside the {ANSWER_OPEN}…{ANSWER_CLOSE} tags: {text!r}")
    return stripped[len(ANSWER_OPEN):-len(ANSWER_CLOSE)].strip()
