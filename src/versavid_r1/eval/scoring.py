"""Per-sample scores, through the training reward code and the same judge services.

For each completion:

- `format_ok`: the training format gate (`versavid_r1.rewards.format_ok`, strict or prefix) for the think
  prompt; for the direct prompt, the completion must be one `<answer>…</answer>` block (prefix mode: must
  start with one).
- `answer`: the text inside `<answer>` (`extract_answer`). With `answer_fallback`, a completion with no
  `<answer>` tag at all is scored on its text with any `<think>` block removed (`answer_tagged` False).
- the task score from `versavid_r1.rewards.score_rows` (composition "sum", so every row is scored, also
  rows that broke the format; the report shows those separately). Benchmark `score` per type:
  MCQA 0/1 (option letter), DarkEventInfer 0/1/2 and MixVidQA 0/1 (Qwen2.5 judge), caption the sample's
  AutoDQ F1 = 2RP/(R+P) with `recall` and `precision` from the caption judge. `task_reward` keeps the
  training task reward (for captions: recall + 0.5 precision + keyword term).
- `judge`: the judge's verdict (verdict, raw reply, score) or AutoDQ result (recall, precision, events).

A judge that still fails after its retries leaves `status` "judge_error" and no score; the completion is
kept and the next run scores it again without regenerating. So does a judge that answered but could not
score the sample (an unparseable verdict, a permanent per-item failure): never a score of 0.
`judge_failure` then says which kind it was ("outage", "unparseable" or "permanent",
versavid_r1.rewards.JudgeFailure), `judge_error_permanent` whether scoring it again would fail the same
way, and `error` why, with the judge's own reason (URL and cause).
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from versavid_r1 import tasks
from versavid_r1.answer import ANSWER_OPEN, extract_answer, wrap_answer
from versavid_r1.protocol import EMPTY, CaptionResult, JudgeResult
from versavid_r1.rewards import JudgeClient, format_ok, score_rows

OK = "ok"
JUDGE_ERROR = "judge_error"

_THINK_BLOCK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
_DIRECT_BODY = r"(?:(?!</?think>|</?answer>).)*"
_DIRECT_STRICT = re.compile(rf"\s*<answer>{_DIRECT_BODY}</answer>\s*", re.DOTALL)
_DIRECT_PREFIX = re.compile(r"\s*<answer>.*?</answer>", re.DOTALL)


def completion_format_ok(text: str, prompt_mode: str, format_mode: str) -> bool:
    """Did the completion follow the format the prompt asked for (see the module docstring)?"""
    if prompt_mode == "think":
        return format_ok(text, format_mode)  # type: ignore[arg-type]
    if format_mode == "strict":
        return _DIRECT_STRICT.fullmatch(text) is not None
    return _DIRECT_PREFIX.match(text) is not None


def answer_of(text: str, fallback: bool) -> tuple[str, bool]:
    """(answer text, whether it came from <answer> tags)."""
    if ANSWER_OPEN in text:
        return extract_answer(text), True
    if not fallback:
        return "", False
    return _THINK_BLOCK.sub("", text).strip(), False


def f1_score(recall: float, precision: float) -> float:
    """Harmonic mean of recall and precision; 0 when both are 0 (DREAM-1K's F1)."""
    return 0.0 if recall + precision <= 0 else 2.0 * recall * precision / (recall + precision)


def _judge_fields(ptype: str, answer: str, result: Any) -> dict[str, Any]:
    if ptype not in tasks.JUDGED_TYPES:
        return {}
    if result is None:
        return {"judge": {"verdict": EMPTY}} if not answer else {}
    if isinstance(result, CaptionResult):
        f1 = f1_score(result.recall, result.precision)
        return {"recall": result.recall, "precision": result.precision, "f1": f1,
                "judge": result.model_dump(exclude_none=True)}
    if isinstance(result, JudgeResult):
        return {"judge": result.model_dump(exclude_none=True)}
    return {"judge": {"result": str(result)}}


def _failure_text(failure) -> str:
    if failure is None:
        return "the judge failed after its retries; the next run scores this sample again"
    if failure.kind == "outage":
        return f"the judge failed after its retries ({failure.reason}); the next run scores this sample again"
    if failure.kind == "unparseable":
        return f"the judge's reply held no clean verdict (not a score of 0): {failure.reason}"
    return f"the judge cannot score this sample: {failure.reason}"


async def score_completions(
    rows: Sequence[dict], completions: Sequence[str], cfg, client: JudgeClient
) -> list[dict[str, Any]]:
    """Score fields of each (row, completion): status, format_ok, answer, score, task_reward, judge, ...

    `rows` are internal rows (problem, solution, problem_type); `cfg` an EvalConfig.
    """
    answers = [answer_of(c, cfg.answer_fallback) for c in completions]
    scored = await score_rows(
        [wrap_answer(a) for a, _ in answers],
        [r["solution"] for r in rows],
        [r["problem_type"] for r in rows],
        [str(r.get("problem") or "") for r in rows],
        cfg.reward_config(),
        client,
        events=[r.get("events") if r["problem_type"] == tasks.CAPTION else None for r in rows],
    )
    out = []
    for row, completion, (answer, tagged), s in zip(rows, completions, answers, scored):
        fields: dict[str, Any] = {
            "answer": answer,
            "answer_tagged": tagged,
            "format_ok": completion_format_ok(completion, cfg.prompt_mode, cfg.format_mode),
        }
        fields.update(_judge_fields(row["problem_type"], answer, s.judge_result))
        if s.skipped or s.task is None:
            fields.update(status=JUDGE_ERROR, score=None, task_reward=None, error=_failure_text(s.failure),
                          judge_error_permanent=s.error_permanent)
            if s.failure is not None:
                fields["judge_failure"] = s.failure.kind
        else:
            if row["problem_type"] == tasks.CAPTION:
                score = fields["f1"]  # an empty caption too: the judge scores it by its AutoDQ rules
            else:
                score = float(s.task)
            fields.update(status=OK, score=score, task_reward=float(s.task))
        out.append(fields)
    return out
