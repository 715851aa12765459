"""Chat messages for the judge model, built from versavid_r1.prompts.

Untrusted texts (the policy's prediction, and for safety also the ground truth and question) go
between field tags such as <prediction>…</prediction>. Before that they are neutralised so that they
cannot end their field or the chat turn:

- any field tag (<prediction>, </ground_truth>, …) in the text is rewritten
  (the angle brackets become ‹ ›);
- chat-template control tokens (<|im_start|>, <|im_end|>, <|endoftext|>, …) are defused the same
  way, so a tokenizer cannot turn them into special tokens.

The verdict is parsed from the judge's reply only (versavid_r1.judges.verdict), never from these texts.
"""
from __future__ import annotations

import re

from .. import prompts
from ..tasks import DARK_EVENT_INFER, MIX_VID_QA

_TAG_RE = re.compile(
    r"<\s*/?\s*(?:" + "|".join(map(re.escape, prompts.JUDGE_FIELD_TAGS)) + r")\s*>", re.IGNORECASE
)
_CONTROL_RE = re.compile(r"<\|([^|<>]{0,64})\|>")


def neutralise(text: str) -> str:
    """`text` with field tags and chat control tokens defused (angle brackets become ‹ ›)."""
    text = _CONTROL_RE.sub(lambda m: f"‹|{m.group(1)}|›", text)
    return _TAG_RE.sub(lambda m: "‹" + m.group(0)[1:-1] + "›", text)


def judge_messages(problem_type: str, prediction: str, ground_truth: str, question: str = "") -> list[dict]:
    """System + user messages asking for a bare verdict on `prediction`."""
    pred, gt, q = neutralise(prediction), neutralise(ground_truth), neutralise(question)
    if problem_type == DARK_EVENT_INFER:
        system, user = prompts.DEI_JUDGE_SYSTEM, prompts.DEI_JUDGE_TEMPLATE.format(
            ground_truth=gt, prediction=pred)
    elif problem_type == MIX_VID_QA:
        system, user = prompts.MIXVIDQA_JUDGE_SYSTEM, prompts.MIXVIDQA_JUDGE_TEMPLATE.format(
            question=q, ground_truth=gt, prediction=pred)
    else:
        raise ValueError(f"the Qwen2.5 judge does not score problem_type {problem_type!r}")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def extract_messages(caption: str, max_events: int) -> list[dict]:
    """AutoDQ extraction messages with the project's templates (`autodq_prompts` holds the others)."""
    from .autodq_prompts import PROJECT_PROMPTS

    return PROJECT_PROMPTS.extract_messages(caption, max_events)


def entail_messages(caption: str, events: list[str]) -> list[dict]:
    """AutoDQ entailment messages with the project's templates."""
    from .autodq_prompts import PROJECT_PROMPTS

    return PROJECT_PROMPTS.entail_messages(caption, events)
