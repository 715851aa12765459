"""The Qwen2.5 judge service: DarkEventInfer 0/1/2 and MixVidQA True/False, plus OpenAI-style chat.

Endpoints (paths from versavid_r1.protocol):
  POST /predict               JudgeRequest -> JudgeResult (compatible with the original project)
  POST /predict_batch         JudgeBatchRequest -> JudgeBatchResponse (raw replies, unparseable count)
  GET  /health                Health (model, backend, ready, queue depth)
  GET  /metrics               counters: generate calls, batch sizes, verdicts, unparseable replies
  POST /v1/chat/completions   OpenAI-compatible, non-streaming (the caption judge can use it)
  GET  /v1/models             OpenAI-compatible model list
  GET  /docs, /openapi.json   the OpenAPI docs

Scoring: the prediction and the ground truth are the texts inside <answer> (versavid_r1.judges.texts:
a text without tags is taken whole, a completion with <think> but no <answer> has an empty answer). An
empty prediction scores 0 with verdict "empty" and the model is not asked. The judge is asked for a bare
verdict with greedy decoding and `max_new_tokens` new tokens; its reply is parsed strictly
(versavid_r1.judges.verdict): anything else is "unparseable", scores 0 and is counted.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from contextlib import asynccontextmanager
from typing import Any, Literal, Optional, Union

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from ..protocol import (
    EMPTY, HEALTH_PATH, PREDICT_BATCH_PATH, PREDICT_PATH, UNPARSEABLE, Health, JudgeBatchRequest,
    JudgeBatchResponse, JudgeRequest, JudgeResult,
)
from .backends.base import BackendError, GenRequest, JudgeBackend, JudgeTask, PromptTooLong, create_backend
from .prompting import judge_messages
from .security import check_len, make_auth_dependency, new_app
from .settings import QwenJudgeSettings
from .texts import answer_text
from .verdict import parse_verdict

log = logging.getLogger("versavid_r1.judges.qwen")

CHAT_PATH = "/v1/chat/completions"
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
    # Accepted for compatibility; JSON mode is enforced only by the openai backend's upstream.
    response_format: Optional[dict[str, Any]] = None


class QwenJudge:
    """Scoring logic, independent of HTTP (the app below is a thin layer over it)."""

    def __init__(self, settings: QwenJudgeSettings, backend: JudgeBackend):
        self.settings = settings
        self.backend = backend
        self.verdicts: Counter = Counter()

    def _validate(self, items: list[JudgeRequest], prefix: str) -> list[tuple[str, str]]:
        lim = self.settings.limits.max_field_chars
        out = []
        for i, it in enumerate(items):
            where = f"{prefix}[{i}]." if prefix else ""
            for name in ("content", "sol", "question"):
                check_len(where + name, getattr(it, name), lim)
            gt = answer_text(it.sol)
            if not gt:
                raise HTTPException(422, detail=f"field '{where}sol' holds no ground-truth text")
            out.append((answer_text(it.content), gt))
        return out

    async def score(self, items: list[JudgeRequest], prefix: str = "items") -> list[JudgeResult]:
        texts = self._validate(items, prefix)
        results: list[Optional[JudgeResult]] = [None] * len(items)
        asks: list[tuple[int, GenRequest]] = []
        for i, (it, (pred, gt)) in enumerate(zip(items, texts)):
            if not pred:
                results[i] = JudgeResult(output=0.0, verdict=EMPTY, raw=None)
                continue
            msgs = judge_messages(it.problem_type, pred, gt, it.question)
            asks.append((i, GenRequest(messages=msgs, max_new_tokens=self.settings.max_new_tokens,
                                       judge_task=JudgeTask(it.problem_type, pred, gt, it.question))))
        try:
            outs = await self.backend.generate_many([r for _, r in asks])
        except PromptTooLong as exc:
            i = asks[exc.index][0] if exc.index < len(asks) else 0
            where = f"{prefix}[{i}]: " if prefix else ""
            raise HTTPException(422, detail=f"{where}{exc}") from exc
        except BackendError as exc:
            raise HTTPException(503, detail=str(exc)) from exc
        for (i, _), out in zip(asks, outs):
            v = parse_verdict(items[i].problem_type, out.text)
            if not v.parsed:
                log.debug("unparseable %s verdict: %r", items[i].problem_type, out.text[:200])
            results[i] = JudgeResult(output=v.score, verdict=v.label, raw=out.text)
        for r in results:
            self.verdicts[r.verdict] += 1
        return results  # type: ignore[return-value]


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
    auth = [Depends(make_auth_dependency(settings.api_key))]

    @app.get(HEALTH_PATH, response_model=Health)
    async def health() -> Health:
        return Health(status="ok" if backend.ready else "loading", model=settings.model_name,
                      backend=backend.name, ready=backend.ready, queue_depth=backend.queue_depth)

    @app.get(METRICS_PATH)
    async def metrics() -> dict:
        return {"backend": backend.name, "model": settings.model_name,
                "uptime_s": round(time.time() - started, 3), "queue_depth": backend.queue_depth,
                **backend.stats.as_dict(), "verdicts": dict(judge.verdicts),
                "unparseable": judge.verdicts.get(UNPARSEABLE, 0)}

    @app.post(PREDICT_PATH, response_model=JudgeResult, dependencies=auth)
    async def predict(req: JudgeRequest) -> JudgeResult:
        return (await judge.score([req], prefix=""))[0]

    @app.post(PREDICT_BATCH_PATH, response_model=JudgeBatchResponse, dependencies=auth)
    async def predict_batch(req: JudgeBatchRequest) -> JudgeBatchResponse:
        if len(req.items) > settings.limits.max_batch_items:
            raise HTTPException(422, detail=f"{len(req.items)} items, more than the limit of "
                                            f"{settings.limits.max_batch_items} (--max-batch-items)")
        results = await judge.score(req.items)
        return JudgeBatchResponse(results=results,
                                  unparseable=sum(r.verdict == UNPARSEABLE for r in results))

    @app.get(MODELS_PATH, dependencies=auth)
    async def models() -> dict:
        return {"object": "list", "data": [{"id": settings.model_name, "object": "model",
                                            "created": int(started), "owned_by": "versavid-r1"}]}

    @app.post(CHAT_PATH, dependencies=auth)
    async def chat_completions(req: ChatCompletionRequest) -> dict:
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in req.messages]
        total = sum(len(m["content"]) for m in messages)
        if total > settings.limits.max_chat_chars:
            raise HTTPException(422, detail=f"messages hold {total} characters, more than the limit "
                                            f"of {settings.limits.max_chat_chars}")
        cap = settings.chat_max_tokens
        max_tokens = min(req.max_completion_tokens or req.max_tokens or cap, cap)
        stop = [req.stop] if isinstance(req.stop, str) else req.stop
        gen = GenRequest(messages=messages, max_new_tokens=max_tokens, temperature=req.temperature,
                         top_p=req.top_p, stop=stop or None, seed=req.seed,
                         response_format=req.response_format if backend.name == "openai" else None)
        try:
            out = await backend.generate(gen)
        except PromptTooLong as exc:
            raise HTTPException(422, detail=str(exc)) from exc
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
