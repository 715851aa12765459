"""The Qwen2.5 judge service: DarkEventInfer 0/1/2 and MixVidQA True/False, plus OpenAI-style chat.

Endpoints (paths from versavid_r1.protocol):
  POST /predict               JudgeRequest -> JudgeResult (compatible with the original project)
  POST /predict_batch         JudgeBatchRequest -> JudgeBatchResponse (raw replies, unparseable count)
  GET  /health                Health (model, backend, ready, queue depth)
  GET  /metrics               counters: generate calls, batch sizes, verdicts, unparseable replies
  POST /v1/chat/completions   OpenAI-compatible, non-streaming (the caption judge can use it)
  GET  /v1/models             OpenAI-compatible model list
  GET  /docs, /openapi.json   the OpenAPI docs

Scoring is versavid_r1.judges.qwen_judge.QwenJudge (strict verdicts, the decoy check). Every
scoring and chat request is cancelled when its client disconnects (versavid_r1.judges.disconnect):
a client that timed out leaves no work behind. `/health` reports the process id and
`--instance-token`, so a launcher can tell its own service from a stale one on the same port.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, Literal, Optional, Union

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from ..protocol import (
    HEALTH_PATH, PREDICT_BATCH_PATH, PREDICT_PATH, UNPARSEABLE, Health, JudgeBatchRequest,
    JudgeBatchResponse, JudgeLimits, JudgeRequest, JudgeResult,
)
from .backends.base import (
    CHAT_LANE, BackendError, GenRequest, JudgeBackend, PromptTooLong, RequestTooLarge, UnsupportedRequest,
    create_backend,
)
from .disconnect import cancel_on_disconnect
from .qwen_judge import QwenJudge
from .security import OverLimit, check_text, make_auth_dependency, new_app
from .settings import QwenJudgeSettings

__all__ = ["QwenJudge", "create_qwen_judge_app"]

log = logging.getLogger("versavid_r1.judges.qwen")

CHAT_PATH = "/v1/chat/completions"
# Backends that tokenize the prompts and so enforce --max-input-tokens and --max-request-tokens.
TOKEN_COUNTING_BACKENDS = ("transformers", "vllm")
MODELS_PATH = "/v1/models"
METRICS_PATH = "/metrics"


# --- OpenAI-compatible chat models (the subset a judge needs) ----------------------------------------
class _TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[str, list[_TextPart], None] = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: Optional[str] = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: Optional[int] = Field(default=None, ge=1)
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)
    # Greedy unless asked otherwise (OpenAI's default is 1.0; a judge wants determinism).
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=1, description="only n=1 is served")
    stream: Literal[False, None] = Field(default=None, description="streaming is not served")
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = None
    # Enforced by the vllm backend (structured output) and the openai backend's upstream; ignored by transformers.
    response_format: Optional[dict[str, Any]] = None


def create_qwen_judge_app(settings: QwenJudgeSettings, backend: Optional[JudgeBackend] = None) -> FastAPI:
    """The FastAPI app of the Qwen2.5 judge; the backend is loaded by the app's lifespan."""
    settings.validate()
    backend = backend if backend is not None else create_backend(settings)
    judge = QwenJudge(settings, backend)
    started = time.time()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await backend.start()
        log.info("Qwen2.5 judge ready: model=%s backend=%s", settings.model_name, backend.name)
        try:
            yield
        finally:
            await backend.stop()

    app = new_app(
        title="VersaVid-R1 Qwen2.5 judge",
        description="DarkEventInfer 0/1/2 and MixVidQA True/False verdicts; OpenAI-compatible chat.",
        max_body_bytes=settings.limits.max_body_bytes, lifespan=lifespan,
    )
    app.state.judge = judge
    app.state.settings = settings
    auth = [Depends(make_auth_dependency(settings.api_key))]
    counters: dict = {"cancelled_requests": 0}

    counted = backend.name in TOKEN_COUNTING_BACKENDS
    limits = JudgeLimits(max_body_bytes=settings.limits.max_body_bytes, max_field_chars=settings.limits.max_field_chars,
                         max_batch_items=settings.limits.max_batch_items,
                         max_input_tokens=settings.max_input_tokens if counted else None,
                         max_request_tokens=settings.limits.max_request_tokens if counted else None)

    @app.get(HEALTH_PATH, response_model=Health)
    async def health() -> Health:
        return Health(status="ok" if backend.ready else "loading", model=settings.model_name,
                      backend=backend.name, ready=backend.ready, queue_depth=backend.queue_depth,
                      pid=os.getpid(), instance=settings.instance_token, limits=limits)

    @app.get(METRICS_PATH)
    async def metrics() -> dict:
        return {"backend": backend.name, "model": settings.model_name,
                "uptime_s": round(time.time() - started, 3), "queue_depth": backend.queue_depth,
                **backend.stats.as_dict(), "verdicts": dict(judge.verdicts),
                "unparseable": judge.verdicts.get(UNPARSEABLE, 0),
                "suspected_injection": judge.verdicts.get("suspected_injection", 0),
                "decoy_checks": judge.decoy_checks, **counters}

    @app.post(PREDICT_PATH, response_model=JudgeResult, response_model_exclude_none=True, dependencies=auth)
    async def predict(req: JudgeRequest, request: Request) -> JudgeResult:
        return (await cancel_on_disconnect(request, judge.score([req], prefix=""), counters))[0]

    @app.post(PREDICT_BATCH_PATH, response_model=JudgeBatchResponse, response_model_exclude_none=True,
              dependencies=auth)
    async def predict_batch(req: JudgeBatchRequest, request: Request) -> JudgeBatchResponse:
        if len(req.items) > settings.limits.max_batch_items:
            raise OverLimit(f"{len(req.items)} items, more than the limit of {settings.limits.max_batch_items} "
                            "(--max-batch-items)")
        results = await cancel_on_disconnect(request, judge.score(req.items), counters)
        return JudgeBatchResponse(results=results,
                                  unparseable=sum(r.verdict == UNPARSEABLE for r in results))

    @app.get(MODELS_PATH, dependencies=auth)
    async def models() -> dict:
        return {"object": "list", "data": [{"id": settings.model_name, "object": "model",
                                            "created": int(started), "owned_by": "versavid-r1"}]}

    @app.post(CHAT_PATH, dependencies=auth)
    async def chat_completions(req: ChatCompletionRequest, request: Request) -> dict:
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in req.messages]
        total = sum(len(m["content"]) for m in messages)
        if total > settings.limits.max_chat_chars:
            raise HTTPException(422, detail=f"messages hold {total} characters, more than the limit "
                                            f"of {settings.limits.max_chat_chars}")
        for i, m in enumerate(messages):
            check_text(f"messages[{i}].content", m["content"], settings.limits.max_chat_chars, "--max-chat-chars")
        cap = settings.chat_max_tokens
        max_tokens = min(req.max_completion_tokens or req.max_tokens or cap, cap)
        stop = [req.stop] if isinstance(req.stop, str) else req.stop
        gen = GenRequest(messages=messages, max_new_tokens=max_tokens, temperature=req.temperature,
                         top_p=req.top_p, stop=stop or None, seed=req.seed, lane=CHAT_LANE,
                         response_format=req.response_format if backend.enforces_response_format else None)
        try:
            out = await cancel_on_disconnect(request, backend.generate(gen), counters)
        except (PromptTooLong, RequestTooLarge) as exc:
            raise HTTPException(422, detail=str(exc)) from exc
        except UnsupportedRequest as exc:
            raise HTTPException(400, detail=str(exc)) from exc
        except BackendError as exc:
            raise HTTPException(503, detail=str(exc)) from exc
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": settings.model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": out.text},
                         "finish_reason": out.finish_reason, "logprobs": None}],
            "usage": {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens,
                      "total_tokens": out.prompt_tokens + out.completion_tokens},
        }

    return app
