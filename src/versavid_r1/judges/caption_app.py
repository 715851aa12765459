"""The AutoDQ caption judge service (port 5200).

Endpoints (paths from versavid_r1.protocol):
  POST /predict        CaptionRequest -> CaptionResult (recall, precision; compatible with the original)
  POST /predict_batch  CaptionBatchRequest -> CaptionBatchResponse
  GET  /health         Health (model, backend "openai" or "azure", ready, queue depth = calls in flight)
  GET  /metrics        calls, retries, malformed replies, cache hits/misses, JSON-mode fallbacks

The model is reached with the `openai` package's async client: `--base-url` (any OpenAI-compatible
server, e.g. the Qwen2.5 judge's http://127.0.0.1:5000/v1), or Azure OpenAI with `--azure-endpoint`
and `--api-version`. The key is read from the environment (OPENAI_API_KEY, or AZURE_OPENAI_API_KEY
for Azure; `--upstream-api-key-env` names another variable); the entry script checks it with one real
call first (versavid_r1.judges.upstream), and /health is not ready until a call has succeeded. It never
returns a silent 0:
- the model endpoint unreachable or failing (an outage): 503 with the reason, worth retrying;
- the model kept answering malformed (non-JSON) replies for this caption, or the endpoint rejected
  the request itself: a permanent failure of that item (versavid_r1.protocol): `/predict` answers
  422 with `{"detail", "reason", "permanent": true}`, `/predict_batch` puts an `ItemError` in the
  item's place and scores the others.
A request whose client disconnects is cancelled with its model calls (versavid_r1.judges.disconnect).
`--backend lexical` needs no model: events and entailment by content-word coverage
(versavid_r1.judges.lexical_autodq), a stand-in for smoke tests and the CPU demo.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from ..protocol import (
    HEALTH_PATH, MAX_PRECOMPUTED_EVENTS, PERMANENT_KEY, PREDICT_BATCH_PATH, PREDICT_PATH, CaptionBatchRequest,
    CaptionBatchResponse, CaptionRequest, CaptionResult, Health, ItemError, JudgeLimits,
)
from .autodq import AutoDQ, AutoDQError
from .decoy import check_caption, check_decoys
from .disconnect import cancel_on_disconnect
from .lexical_autodq import LexicalAutoDQ
from .security import OverLimit, check_text, make_auth_dependency, new_app
from .settings import CaptionJudgeSettings
from .texts import answer_text
from .upstream import endpoint, make_openai_client, probe_until_verified

log = logging.getLogger("versavid_r1.judges.caption")
METRICS_PATH = "/metrics"


def create_caption_judge_app(settings: CaptionJudgeSettings, client=None, upstream_verified: bool = True) -> FastAPI:
    """The FastAPI app of the AutoDQ caption judge (`client` overrides the OpenAI client, for tests).
    `upstream_verified=False`: no call to the model endpoint has succeeded yet (`upstream.verify_upstream`
    failed for a transient reason): /health says not ready until a background probe or a scoring call
    succeeds."""
    settings.validate()
    lexical = settings.backend == "lexical"
    state: dict = {"scorer": None, "verified": upstream_verified or lexical}
    backend_name = "lexical" if lexical else "azure" if settings.azure_endpoint else "openai"
    model_name = "lexical" if lexical else settings.model
    started = time.time()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = client is None and not lexical
        c = make_openai_client(settings) if own else client
        state["scorer"] = LexicalAutoDQ(settings) if lexical else AutoDQ(c, settings)
        app.state.autodq = state["scorer"]
        probe = None if state["verified"] else asyncio.create_task(probe_until_verified(
            c, settings, lambda: state["verified"], lambda: state.update(verified=True)))
        log.info("caption judge %s: model=%s via %s, scoring=%s, prompts=%s",
                 "ready" if state["verified"] else "up, waiting for its model endpoint", model_name,
                 "lexical" if lexical else endpoint(settings), settings.scoring, state["scorer"].templates.source)
        try:
            yield
        finally:
            state["scorer"] = None
            if probe is not None:
                probe.cancel()
            if own:
                await c.close()

    app = new_app(
        title="VersaVid-R1 AutoDQ caption judge",
        description="AutoDQ recall/precision of a caption against a reference, via an "
                    "OpenAI-compatible model.",
        max_body_bytes=settings.limits.max_body_bytes, lifespan=lifespan,
    )
    app.state.settings = settings
    auth = [Depends(make_auth_dependency(settings.api_key))]
    counters: dict = {"cancelled_requests": 0, "permanent_failures": 0}

    def scorer() -> AutoDQ:
        s = state["scorer"]
        if s is None:
            raise HTTPException(503, detail="caption judge is not ready")
        return s

    def validate(item: CaptionRequest, where: str) -> None:
        lim = settings.limits.max_field_chars
        check_text(where + "content", item.content, lim)
        check_text(where + "sol", item.sol, lim)
        if item.events is not None:
            if len(item.events) > MAX_PRECOMPUTED_EVENTS:
                raise OverLimit(f"field '{where}events' has {len(item.events)} events, more than "
                                f"{MAX_PRECOMPUTED_EVENTS}")
            for j, e in enumerate(item.events):
                check_text(f"{where}events[{j}]", e, lim)
        elif not answer_text(item.sol):
            raise HTTPException(422, detail=f"field '{where}sol' holds no ground-truth caption")
        check_decoys(where, item.decoys, lim)

    async def score_one(item: CaptionRequest) -> CaptionResult:
        prediction = answer_text(item.content)
        out = await scorer().score(prediction, answer_text(item.sol), item.events)
        state["verified"] = True  # a real call to the model endpoint succeeded
        decoys = [answer_text(d) for d in item.decoys or () if answer_text(d)]
        if settings.decoy_check and decoys:
            out = await check_caption(scorer(), prediction, out, decoys)
        return CaptionResult(**out)

    limits = JudgeLimits(max_body_bytes=settings.limits.max_body_bytes,
                         max_field_chars=settings.limits.max_field_chars,
                         max_batch_items=settings.limits.max_batch_items)

    @app.get(HEALTH_PATH, response_model=Health)
    async def health() -> Health:
        s = state["scorer"]
        ready = s is not None and state["verified"]
        return Health(status="ok" if ready else "loading" if s is None else "unverified", model=model_name,
                      backend=backend_name, ready=ready, queue_depth=s.active_calls if s else 0, pid=os.getpid(),
                      instance=settings.instance_token, limits=limits)

    @app.get(METRICS_PATH)
    async def metrics() -> dict:
        s = state["scorer"]
        return {"backend": backend_name, "model": model_name, "scoring": settings.scoring,
                "prompts": s.templates.source if s else None,
                "uptime_s": round(time.time() - started, 3),
                "json_mode": bool(s and s.json_mode_active), "cache_entries": s.cache_entries if s else 0,
                "active_calls": s.active_calls if s else 0, **(dict(s.stats) if s else {}), **counters}

    @app.post(PREDICT_PATH, response_model=CaptionResult, dependencies=auth)
    async def predict(req: CaptionRequest, request: Request):
        validate(req, "")
        try:
            return await cancel_on_disconnect(request, score_one(req), counters)
        except AutoDQError as exc:
            if not exc.permanent:
                raise HTTPException(503, detail=f"caption judge failed: {exc}") from exc
            counters["permanent_failures"] += 1
            reason = f"caption judge cannot score this item: {exc}"
            return JSONResponse({"detail": reason, "reason": reason, PERMANENT_KEY: True}, status_code=422)

    async def score_batch(items: list[CaptionRequest]) -> list:
        outs = await asyncio.gather(*(score_one(it) for it in items), return_exceptions=True)
        for i, o in enumerate(outs):
            if isinstance(o, AutoDQError) and o.permanent:
                counters["permanent_failures"] += 1
                outs[i] = ItemError(error=f"caption judge cannot score items[{i}]: {o}", permanent=True)
            elif isinstance(o, AutoDQError):
                raise HTTPException(503, detail=f"caption judge failed on items[{i}]: {o}")
            elif isinstance(o, BaseException):
                raise o
        return list(outs)

    @app.post(PREDICT_BATCH_PATH, response_model=CaptionBatchResponse, dependencies=auth)
    async def predict_batch(req: CaptionBatchRequest, request: Request) -> CaptionBatchResponse:
        if len(req.items) > settings.limits.max_batch_items:
            raise OverLimit(f"{len(req.items)} items, more than the limit of {settings.limits.max_batch_items} "
                            "(--max-batch-items)")
        for i, it in enumerate(req.items):
            validate(it, f"items[{i}].")
        return CaptionBatchResponse(results=await cancel_on_disconnect(request, score_batch(req.items), counters))

    return app
