"""The format gate: is a completion `<think>…</think><answer>…</answer>`?

Decision (the paper leaves it open; docs/deviations.md): the default mode is **"strict"**, a full match.

* The completion must start with `<think>` at its first character (as in the reference code).
* Exactly one think block, then optional whitespace, then exactly one answer block, then only
  optional whitespace to the end. Trailing whitespace/newlines are tolerated because decoders often
  leave them; any other text after `</answer>` fails the gate.
* Neither block may contain one of the four tags (`<think>`, `</think>`, `<answer>`, `</answer>`):
  nested or repeated tags fail the gate.

Why not the reference's prefix match (`re.match`, text after `</answer>` tolerated)? With a prefix
match the policy can append anything after the first answer — a second `<answer>` block, a hedge, a
different option — and still be paid by a scorer that reads only the first answer. A full match
removes that loophole at the cost of rejecting the rare completion that quotes a tag inside its
reasoning. The reference behaviour stays available as mode **"prefix"**
(`RewardConfig.format_mode="prefix"`), e.g. to reproduce the paper's curves.

Tags are case-sensitive, like `versavid_r1.answer.extract_answer`.
"""
from __future__ import annotations

import re
from typing import Any, Literal, Sequence

from versavid_r1.answer import ANSWER_OPEN, extract_answer

FormatMode = Literal["strict", "prefix"]
FORMAT_MODES: tuple[str, ...] = ("strict", "prefix")

# A body that contains none of the four tags (tempered token, linear time).
_BODY = r"(?:(?!</?think>|</?answer>).)*"
_STRICT = re.compile(rf"<think>{_BODY}</think>\s*<answer>{_BODY}</answer>\s*", re.DOTALL)
# The reference code's pattern, applied with re.match (anchored at the start only).
_PREFIX = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)


def completion_text(completion: Any) -> str:
    """The text of one completion as TRL passes it: a plain string, or a conversational list of
    messages (`[{"role": "assistant", "content": ...}]`, content a string or a list of parts).

    Conversational completions are the concatenation of their assistant messages' text (usually
    one). Anything else (None, numbers) is read as "" so that rewards never raise on odd input.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, (list, tuple)):
        parts: list[str] = []
        for message in completion:
            if not isinstance(message, dict):
                if isinstance(message, str):
                    parts.append(message)
                continue
            if message.get("role", "assistant") != "assistant":
                continue
            parts.append(_content_text(message.get("content")))
        return "".join(parts)
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
        return "".join(out)
    return ""


def answer_text(text: Any) -> str:
    """The answer part of a completion or solution: inside the first `<answer>` (closing tag
    optional) if there is one, else the whole stripped text (solutions are often a bare "B")."""
    if not isinstance(text, str):
        return ""
    if ANSWER_OPEN in text:
        return extract_answer(text)
    return text.strip()


def format_ok(text: str, mode: FormatMode = "strict") -> bool:
    """True if `text` passes the format gate in `mode` ("strict" full match or "prefix")."""
    if not isinstance(text, str):
        return False
    if mode == "strict":
        return _STRICT.fullmatch(text) is not None
    if mode == "prefix":
        return _PREFIX.match(text) is not None
    raise ValueError(f"format mode must be one of {FORMAT_MODES}, got {mode!r}")


def format_reward(completions: Sequence[Any], format_mode: FormatMode = "strict", **kwargs: Any) -> list[float]:
    """The format gate as a TRL reward function: 1.0 per well-formed completion, else 0.0.

    `completions` are plain strings or conversational message lists; other TRL keyword arguments
    (prompts, dataset columns, log_metric, …) are accepted and ignored. `format_mode` is "strict"
    (default, full match) or "prefix" (the reference's match); bind it with functools.partial.
    """
    if format_mode not in FORMAT_MODES:
        raise ValueError(f"format mode must be one of {FORMAT_MODES}, got {format_mode!r}")
    return [1.0 if format_ok(completion_text(c), format_mode) else 0.0 for c in completions]
