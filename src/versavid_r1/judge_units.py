"""What a row, and a completion, send to the judge services, counted in the services' own units.

The services refuse a request by its body size in bytes (HTTP 413, `--max-body-bytes`), by characters per
field (422, `--max-field-chars`) and, for the Qwen judge on a tokenizer, by prompt tokens (422,
`--max-input-tokens` per item, `--max-request-tokens` per request). Characters alone under-count both
(a 15,000-emoji answer is 60,000 judge tokens; 64 events of 16,000 emoji are 12 MB of JSON), so:

- bytes are counted on the exact body the client sends (`encode_body`: JSON with ASCII escapes, so that a
  lone surrogate travels as an escape and the service names it);
- tokens are bounded by UTF-8 bytes: a byte-level BPE tokenizer (Qwen's, GPT's) never makes more tokens
  than the text has bytes (each token covers at least one byte), so `prompt_token_bound` of the judge's
  own prompt (`versavid_r1.judges.prompting`, the chat template's role markers added) can never be
  below the count the service makes. It is conservative for plain English (about 4 bytes a token).

Data validation (`versavid_r1.data.limits`) checks a row with an empty prediction against the limits; the
judge client (`versavid_r1.rewards.judge_client`) checks each item with its prediction before sending it
and packs batches within the body and token limits. The limits come from each service's `/health`
(`protocol.JudgeLimits`) or from flags, defaulting to the services' shipped defaults.
"""
from __future__ import annotations

import json
from typing import Optional

from versavid_r1 import tasks
from versavid_r1.answer import wrap_answer
from versavid_r1.protocol import CaptionRequest, JudgeLimits, JudgeRequest

# Tokens a chat template adds per message (`<|im_start|>role\n` ... `<|im_end|>\n`) and for the generation
# prompt: a generous bound for Qwen's template and its peers.
CHAT_TOKENS_PER_MESSAGE = 8
GENERATION_PROMPT_TOKENS = 8
# The `{"items": [` ... `]}` around a batch and the comma between items.
_BATCH_FRAME_BYTES = len(b'{"items": []}')
_BATCH_SEPARATOR_BYTES = len(b", ")


def encode_body(payload: dict) -> bytes:
    """The request body exactly as the client sends it."""
    return json.dumps(payload).encode("ascii")


def token_bound(text: str) -> int:
    """At least as many tokens as a byte-level BPE tokenizer makes of `text`: its UTF-8 bytes."""
    return len(text.encode("utf-8", "surrogatepass"))


def judge_request(problem_type: str, answer: str, solution: str, question: str = "",
                  events: Optional[list[str]] = None):
    """The protocol item the client sends for one answer (`rewards.judge_items.request_model` builds the same)."""
    content = wrap_answer(answer.strip())
    if tasks.JUDGE_OF_TYPE.get(problem_type) == tasks.CAPTION_JUDGE:
        return CaptionRequest(content=content, sol=solution, events=list(events) if events else None)
    return JudgeRequest(content=content, sol=solution, problem_type=problem_type, question=question)


def item_bytes(request) -> int:
    """Bytes of one item's JSON in a request body (a single /predict body is exactly this)."""
    return len(encode_body(request.model_dump()))


def batch_bytes(item_sizes: list[int]) -> int:
    """Bytes of a /predict_batch body holding items of these sizes."""
    return _BATCH_FRAME_BYTES + sum(item_sizes) + _BATCH_SEPARATOR_BYTES * max(0, len(item_sizes) - 1)


def prompt_token_bound(request) -> int:
    """A bound on the Qwen judge's prompt tokens for one item (its system and user messages as the service
    builds them, with the texts it takes from `content` and `sol`); 0 for a caption item (no token limit)."""
    if not isinstance(request, JudgeRequest):
        return 0
    from versavid_r1.judges.prompting import judge_messages
    from versavid_r1.judges.texts import answer_text

    messages = judge_messages(request.problem_type, answer_text(request.content), answer_text(request.sol),
                              request.question)
    return sum(token_bound(m["content"]) + CHAT_TOKENS_PER_MESSAGE for m in messages) + GENERATION_PROMPT_TOKENS


def item_problems(request, limits: JudgeLimits) -> list[tuple[str, str]]:
    """(field, message) for each limit of `limits` that this one item breaks on its own."""
    out = []
    size = item_bytes(request)
    if size > limits.max_body_bytes:
        out.append(("request", f"{size} bytes of JSON, more than the judge accepts in one request "
                               f"({limits.max_body_bytes}, its --max-body-bytes; judge_max_body_bytes here)"))
    tokens = prompt_token_bound(request)
    if limits.max_input_tokens is not None and tokens > limits.max_input_tokens:
        out.append(("prompt", f"up to {tokens} judge tokens (its UTF-8 bytes), more than the judge accepts per "
                              f"item ({limits.max_input_tokens}, its --max-input-tokens; judge_max_input_tokens "
                              "here)"))
    return out


def field_problems(request, limits: JudgeLimits) -> list[str]:
    """Text fields of one item longer than the service's `--max-field-chars` (it answers 422)."""
    texts = {k: v for k, v in request.model_dump().items() if isinstance(v, str)}
    texts.update({f"events[{j}]": e for j, e in enumerate(getattr(request, "events", None) or [])})
    return [f"field '{k}' has {len(v)} characters, more than the judge accepts ({limits.max_field_chars}, its "
            "--max-field-chars)" for k, v in texts.items() if len(v) > limits.max_field_chars]


def default_limits(judge: str, max_field_chars: int = tasks.DEFAULT_MAX_FIELD_CHARS,
                   max_body_bytes: int = tasks.DEFAULT_MAX_BODY_BYTES,
                   max_input_tokens: Optional[int] = tasks.DEFAULT_MAX_INPUT_TOKENS) -> JudgeLimits:
    """The limits assumed for `judge` before (or without) its /health: the shipped defaults or flags."""
    qwen = judge == tasks.QWEN_JUDGE
    return JudgeLimits(max_body_bytes=max_body_bytes, max_field_chars=max_field_chars,
                       max_batch_items=tasks.DEFAULT_MAX_BATCH_ITEMS,
                       max_input_tokens=max_input_tokens if qwen else None,
                       max_request_tokens=tasks.DEFAULT_MAX_REQUEST_TOKENS if qwen else None)


def pack_batches(sizes: list[int], tokens: list[int], max_items: int, limits: JudgeLimits) -> list[list[int]]:
    """Indices of items grouped, in order, into requests within `max_items`, the service's item count, body
    bytes and (Qwen judge) request tokens. Every item fits alone (checked with `item_problems` first)."""
    cap = min(max_items, limits.max_batch_items)
    batches: list[list[int]] = []
    current: list[int] = []
    body = tok = 0
    for i, (size, t) in enumerate(zip(sizes, tokens)):
        grown = batch_bytes([body, size]) - _BATCH_FRAME_BYTES if current else size
        over = (len(current) >= cap or _BATCH_FRAME_BYTES + grown > limits.max_body_bytes
                or (limits.max_request_tokens is not None and tok + t > limits.max_request_tokens))
        if current and over:
            batches.append(current)
            current, body, tok = [], 0, 0
            grown = size
        current.append(i)
        body, tok = grown, tok + t
    if current:
        batches.append(current)
    return batches
