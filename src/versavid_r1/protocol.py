"""The judge services' wire format, imported by both sides (rewards.JudgeClient and judges.*).

`POST /predict` is compatible with the original project:
  Qwen2.5 judge:  {content, sol, problem_type, question} -> {output, ...}
  caption judge:  {content, sol}                         -> {recall, precision, ...}
`POST /predict_batch` takes many items in one request; `GET /health` reports readiness.
`content` and `sol` may be whole completions / solutions: the services take the text inside
`<answer>` (versavid_r1.answer.extract_answer), as the original did.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

PREDICT_PATH = "/predict"
PREDICT_BATCH_PATH = "/predict_batch"
HEALTH_PATH = "/health"

DEFAULT_QWEN_JUDGE_PORT = 5000
DEFAULT_CAPTION_JUDGE_PORT = 5200

# Verdict label of a judge reply that is not a clean verdict; it scores 0 and is counted.
UNPARSEABLE = "unparseable"
# Verdict label of an item whose prediction was empty: scored 0 without asking the model.
EMPTY = "empty"


class _Model(BaseModel):
    # Unknown fields are ignored so that older/newer clients keep working.
    model_config = ConfigDict(extra="ignore")


# --- Qwen2.5 judge (DarkEventInfer, MixVidQA) -------------------------------------------------
class JudgeRequest(_Model):
    content: str = Field(description="The policy's completion (or its answer)")
    sol: str = Field(description="The ground truth, usually `<answer>…</answer>`")
    problem_type: Literal["DarkEventInfer", "MixVidQA"]
    question: str = Field(default="", description="The row's own question (used by MixVidQA)")


class JudgeResult(_Model):
    output: float = Field(description="Score: DarkEventInfer 0/1/2, MixVidQA 0/1")
    verdict: str = Field(default="", description="Parsed verdict, 'unparseable' or 'empty'")
    raw: Optional[str] = Field(default=None, description="The judge model's reply text")


class JudgeBatchRequest(_Model):
    items: list[JudgeRequest]


class JudgeBatchResponse(_Model):
    results: list[JudgeResult]
    unparseable: int = 0


# --- AutoDQ caption judge ----------------------------------------------------------------------
class CaptionRequest(_Model):
    content: str = Field(description="The policy's caption (or completion with <answer>)")
    sol: str = Field(description="The ground-truth caption")
    events: Optional[list[str]] = Field(
        default=None, description="Precomputed ground-truth events; skips extracting them"
    )


class CaptionResult(_Model):
    recall: float
    precision: float
    pred_events: Optional[list[str]] = None
    gt_events: Optional[list[str]] = None


class CaptionBatchRequest(_Model):
    items: list[CaptionRequest]


class CaptionBatchResponse(_Model):
    results: list[CaptionResult]


# --- Both ----------------------------------------------------------------------------------------
class Health(_Model):
    status: str = "ok"
    model: str = ""
    backend: str = ""
    ready: bool = True
    queue_depth: int = 0


class ErrorBody(_Model):
    """The JSON body of an error answer. `permanent: true` says that retrying the same request cannot
    succeed (e.g. the caption judge's model cannot produce the JSON AutoDQ needs for this caption), as
    opposed to an outage: clients do not retry it, and a batch that failed this way is re-sent item by
    item so that only the affected items fail. Services send it with status 422; clients honour the field
    whatever the status. Without the field: 5xx, 408 and 429 are outages (retried), other 4xx are
    protocol errors (never retried, never skipped)."""

    detail: object = ""
    permanent: bool = False


PERMANENT_ERROR_STATUS = 422

