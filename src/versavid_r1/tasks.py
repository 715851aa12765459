"""The four problem types of VersaVid-R1 and how each is scored (docs/method.md, "Rewards")."""
from __future__ import annotations

from typing import Final, Literal

ProblemType = Literal["MCQA", "DarkEventInfer", "MixVidQA", "caption"]

MCQA: Final = "MCQA"
DARK_EVENT_INFER: Final = "DarkEventInfer"
MIX_VID_QA: Final = "MixVidQA"
CAPTION: Final = "caption"

PROBLEM_TYPES: Final[tuple[str, ...]] = (MCQA, DARK_EVENT_INFER, MIX_VID_QA, CAPTION)

# Which judge service scores a type; MCQA is scored by rule and needs none.
QWEN_JUDGE: Final = "qwen25"
CAPTION_JUDGE: Final = "caption"
JUDGE_OF_TYPE: Final[dict[str, str]] = {
    DARK_EVENT_INFER: QWEN_JUDGE,
    MIX_VID_QA: QWEN_JUDGE,
    CAPTION: CAPTION_JUDGE,
}
JUDGED_TYPES: Final[frozenset[str]] = frozenset(JUDGE_OF_TYPE)
# Their default ports (versavid_r1.protocol re-exports them; kept here so that the services' option
# parsing imports nothing heavy).
DEFAULT_QWEN_JUDGE_PORT: Final = 5000
DEFAULT_CAPTION_JUDGE_PORT: Final = 5200
# Default of the services' --max-field-chars: characters of one text field (content, sol, question,
# each event); longer gets 422. Data validation checks rows against the same number (its
# judge_max_field_chars option defaults to it), so a row that passes validation is never refused.
DEFAULT_MAX_FIELD_CHARS: Final = 16_000
# The services' other request limits (their --max-body-bytes, --max-batch-items, the Qwen judge's
# --max-input-tokens and --max-request-tokens), shipped defaults that clients and data validation assume
# when a service's /health does not report its own (versavid_r1.judge_units).
DEFAULT_MAX_BODY_BYTES: Final = 4 * 1024 * 1024
DEFAULT_MAX_BATCH_ITEMS: Final = 512
DEFAULT_MAX_INPUT_TOKENS: Final = 8192
DEFAULT_MAX_REQUEST_TOKENS: Final = 131_072

# Range of each task reward before the format gate (docs/method.md): used by tests and by reward checks.
TASK_REWARD_RANGE: Final[dict[str, tuple[float, float]]] = {
    MCQA: (0.0, 1.0),
    DARK_EVENT_INFER: (0.0, 2.0),
    MIX_VID_QA: (0.0, 1.0),
    # recall + 0.5 * precision + keyword term; the keyword term is capped at 0.4 and has no floor.
    CAPTION: (float("-inf"), 1.9),
}
