"""The judge services' wire format, imported by both sides (rewards.JudgeClient and judges.*).

`POST /predict` is compatible with the original project:
  Qwen2.5 judge:  {content, sol, problem_type, question} -> {output, ...}
  caption judge:  {content, sol}                         -> {recall, precision, ...}
`POST /predict_batch` takes many items in one request; `GET /health` reports readiness.
`content` and `sol` may be whole completions / solutions: the services take the text inside
`<answer>` (versavid_r1.answer.extract_answer), as the original did.

Errors, and how a client tells them apart (docs/judges.md, "Errors and retries", states the same):

* **Outage** (retry it, maybe on another replica): connection errors, timeouts, HTTP 5xx, 408, 429.
* **Permanent failure of one item** (do not retry; skip the item): on `/predict`, HTTP 422 whose JSON
  body holds `"permanent": true` (and `reason`, `detail`); in a `/predict_batch` reply, an `ItemError`
  (`{"error": ..., "permanent": true}`) in that item's place while the other items carry results.
  Example: the caption model kept answering non-JSON for this caption.
* **Over a limit** (never retried): HTTP 413 (body size), or a 422 whose body holds `"over_limit": true`
  (a field, the prompt or the batch over the service's limits, or a lone surrogate). A client splits a
  batch to find the item, and under `on_judge_error=skip` counts that item as skipped.
* **Bad request** (a bug on one side; never retried, never skipped): any other 4xx, e.g. a 422
  for a request that does not match the wire format.
* **Unparseable verdict**: a 200 result whose `verdict` is `UNPARSEABLE` (`output` 0 is a
  placeholder, not a score): the judge answered but its reply held no clean verdict. Clients count
  it as a judge failure of that item, never as a reward of 0.
* **Suspected injection**: a 200 result whose `verdict` is `SUSPECTED_INJECTION`, `output` 0 (caption
  judge: `suspected_injection` true, recall and precision 0): the prediction did at least as well
  against a decoy ground truth it cannot match (see versavid_r1.judges.decoy), so its positive verdict
  is not trusted.

Decoys: an item may carry `decoys`, ground truths of other rows chosen by the client
(versavid_r1.rewards.decoys). A list (even an empty one) says which decoys to check a positive verdict
against (empty: no check); an item without the field (an older client) is checked against the other
items of its request, as before. Older services ignore the field.
"""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from .tasks import (  # noqa: F401 - the ports and defaults are re-exported
    DEFAULT_CAPTION_JUDGE_PORT, DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FIELD_CHARS,
    DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_REQUEST_TOKENS, DEFAULT_QWEN_JUDGE_PORT,
)

PREDICT_PATH = "/predict"
PREDICT_BATCH_PATH = "/predict_batch"
HEALTH_PATH = "/health"


# Most precomputed ground-truth events one caption request may carry (fixed; more gets 422).
MAX_PRECOMPUTED_EVENTS = 64

# Verdict label of a judge reply that is not a clean verdict; it scores 0 and is counted.
UNPARSEABLE = "unparseable"
# Verdict label of an item whose prediction was empty: scored 0 without asking the model.
EMPTY = "empty"
# Verdict label of a prediction judged correct against a decoy ground truth too: scored 0, counted.
SUSPECTED_INJECTION = "suspected_injection"
# Key of a 422 body (single /predict) that marks a permanent failure of that item, not a bad request.
PERMANENT_KEY = "permanent"
# Most decoy ground truths one item may carry (more gets 422): each costs a judge call per positive verdict.
MAX_DECOYS_PER_ITEM = 4
# Key of a 422 body that marks a request or item over one of the service's limits (a field's characters,
# the prompt's tokens, the items of a batch), not a malformed request; 413 (body size) means the same.
OVER_LIMIT_KEY = "over_limit"


class _Model(BaseModel):
    # Unknown fields are ignored so that older/newer clients keep working.
    model_config = ConfigDict(extra="ignore")


# --- Qwen2.5 judge (DarkEventInfer, MixVidQA) -------------------------------------------------
class JudgeRequest(_Model):
    content: str = Field(description="The policy's completion (or its answer)")
    sol: str = Field(description="The ground truth, usually `<answer>…</answer>`")
    problem_type: Literal["DarkEventInfer", "MixVidQA"]
    question: str = Field(default="", description="The row's own question (used by MixVidQA)")
    decoys: Optional[list[str]] = Field(
        default=None, description="Ground truths of other rows to check a positive verdict against "
                                  "([]: no check; absent: the request's other items)")


class JudgeResult(_Model):
    output: float = Field(description="Score: DarkEventInfer 0/1/2, MixVidQA 0/1")
    verdict: str = Field(default="", description="Parsed verdict, 'unparseable', 'empty' or "
                                                 "'suspected_injection'")
    raw: Optional[str] = Field(default=None, description="The judge model's reply text")
    decoy_verdict: Optional[str] = Field(default=None, description="The best verdict against a decoy "
                                         "ground truth (only when the decoy check ran)")


class ItemError(_Model):
    """One item of a batch that could not be scored; the other items of the batch are unaffected."""

    error: str = Field(description="Why, e.g. the model's last malformed reply")
    permanent: bool = Field(default=True, description="True: retrying this item will not help")


class JudgeBatchRequest(_Model):
    items: list[JudgeRequest]


class JudgeBatchResponse(_Model):
    results: list[Union[JudgeResult, ItemError]]
    unparseable: int = 0


# --- AutoDQ caption judge ----------------------------------------------------------------------
class CaptionRequest(_Model):
    content: str = Field(description="The policy's caption (or completion with <answer>)")
    sol: str = Field(description="The ground-truth caption")
    events: Optional[list[str]] = Field(
        default=None, description="Precomputed ground-truth events; skips extracting them"
    )
    decoys: Optional[list[str]] = Field(
        default=None, description="Ground-truth captions of other rows to check a positive score against "
                                  "(absent or []: no check)")


class CaptionResult(_Model):
    recall: float
    precision: float
    pred_events: Optional[list[str]] = None
    gt_events: Optional[list[str]] = None
    decoy_recall: Optional[float] = Field(default=None, description="Best recall of a decoy caption's events "
                                          "(only when the decoy check ran)")
    decoy_precision: Optional[float] = Field(default=None, description="Best precision against a decoy caption")
    suspected_injection: bool = Field(default=False, description="The prediction did as well against a decoy: "
                                      "recall and precision were set to 0")


class CaptionBatchRequest(_Model):
    items: list[CaptionRequest]


class CaptionBatchResponse(_Model):
    results: list[Union[CaptionResult, ItemError]]


# --- Both ----------------------------------------------------------------------------------------
class JudgeLimits(_Model):
    """What a service accepts in one request, in its own units (reported by /health; clients and data
    validation bound what they send by it, versavid_r1.judge_units). None: not limited by the service."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS
    max_input_tokens: Optional[int] = Field(default=None, description="prompt tokens of one item (Qwen judge "
                                            "with a tokenizer: transformers, vllm)")
    max_request_tokens: Optional[int] = Field(default=None, description="prompt tokens of all items of a request")


class Health(_Model):
    status: str = "ok"
    model: str = ""
    backend: str = ""
    ready: bool = True
    queue_depth: int = 0
    # Which process answers: the launcher's start-up wait checks them (versavid_r1.judges.wait).
    pid: Optional[int] = None
    instance: Optional[str] = Field(default=None, description="the service's --instance-token")
    limits: Optional[JudgeLimits] = Field(default=None, description="the request limits it enforces")
