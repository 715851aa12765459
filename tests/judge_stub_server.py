"""A scriptable judge service for tests: a real FastAPI app served by uvicorn on 127.0.0.1.

It speaks the judge services' wire format (`versavid_r1.protocol`: /predict, /predict_batch,
/health) and can answer scripted verdicts, be slow, fail the first N requests, reply garbage, lack
the batch endpoint, require a bearer token, be down (`down_url()`: a port nobody listens on), or answer
a permanent error for each of the `permanent` answers (an `ItemError` with `permanent: true` in a batch, a
422 with `"permanent": true` from /predict; `versavid_r1.protocol`), as the caption judge does for a
caption its model cannot turn into JSON.

    with StubJudge(kind="qwen", delay_s=0.2, scores={"a dog": 2}) as stub:   # or hold_until_in_flight=4
        client = JudgeClient({"qwen25": stub.url}, ...)
        ...
        stub.requests   # [(path, n_items), ...] in arrival order

Scoring without a script: DarkEventInfer gets 2 and MixVidQA 1 when the extracted answer equals the
extracted ground truth (case-insensitive), else 0; caption gets recall = precision = 1 when equal,
else 0. A `score_fn` may return an `ItemError`: the batch endpoint puts it in the item's place and
`/predict` answers it as the protocol's permanent 422 (`{"detail", "reason", "permanent": true}`).
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Callable, Optional, Union

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from versavid_r1.answer import extract_answer
from versavid_r1.protocol import (
    HEALTH_PATH,
    PREDICT_BATCH_PATH,
    PREDICT_PATH,
    CaptionBatchRequest,
    CaptionBatchResponse,
    CaptionRequest,
    CaptionResult,
    Health,
    ItemError,
    JudgeBatchRequest,
    JudgeBatchResponse,
    JudgeRequest,
    JudgeResult,
)

MAX_SCORE = {"DarkEventInfer": 2.0, "MixVidQA": 1.0}
HOLD_LIMIT_S = 60.0   # `hold_until_in_flight`: longer than any test client's timeout


def _text(s: str) -> str:
    return (extract_answer(s) if "<answer>" in s else s).strip().lower()


def down_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class StubJudge:
    def __init__(
        self,
        kind: str = "qwen",
        *,
        delay_s: float = 0.0,
        fail_first: int = 0,
        fail_status: int = 500,
        scores: Optional[dict[str, float]] = None,
        caption_scores: Optional[dict[str, tuple[float, float]]] = None,
        score_fn: Optional[Callable[[Union[JudgeRequest, CaptionRequest]], object]] = None,
        batch_endpoint: bool = True,
        token: Optional[str] = None,
        permanent: Optional[set[str]] = None,
        hold_until_in_flight: int = 0,
    ) -> None:
        assert kind in ("qwen", "caption")
        self.kind = kind
        self.delay_s = delay_s
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.scores = {k.lower(): v for k, v in (scores or {}).items()}
        self.caption_scores = {k.lower(): v for k, v in (caption_scores or {}).items()}
        self.score_fn = score_fn
        self.batch_endpoint = batch_endpoint
        self.token = token  # when set, requests without "Authorization: Bearer <token>" get 401
        self.permanent = {a.lower() for a in (permanent or ())}
        # Each request is answered only once this many requests have been in flight together (at most
        # HOLD_LIMIT_S later): concurrency shown by a count, whatever the machine's speed.
        self.hold_until_in_flight = hold_until_in_flight
        self.requests: list[tuple[str, int]] = []  # (path, number of items), every arrival
        self.items: list[Union[JudgeRequest, CaptionRequest]] = []  # items that were scored
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server: Optional[uvicorn.Server] = None
        self._thread: Optional[threading.Thread] = None
        self.url = ""
        self.app = self._make_app()

    # --- scoring -------------------------------------------------------------------------------
    def _score_qwen(self, req: JudgeRequest):
        if self.score_fn is not None:
            out = self.score_fn(req)
            return out if isinstance(out, (JudgeResult, ItemError)) else JudgeResult(output=float(out), verdict="scripted")
        answer = _text(req.content)
        if answer in self.scores:
            return JudgeResult(output=self.scores[answer], verdict="scripted")
        ok = answer == _text(req.sol)
        return JudgeResult(output=MAX_SCORE[req.problem_type] if ok else 0.0, verdict="match" if ok else "mismatch")

    def _score_caption(self, req: CaptionRequest):
        if self.score_fn is not None:
            out = self.score_fn(req)
            if isinstance(out, (CaptionResult, ItemError)):
                return out
            recall, precision = out  # type: ignore[misc]
            return CaptionResult(recall=recall, precision=precision)
        answer = _text(req.content)
        if answer in self.permanent:
            return ItemError(error="the model cannot produce JSON for this caption", permanent=True)
        if answer in self.caption_scores:
            recall, precision = self.caption_scores[answer]
            return CaptionResult(recall=recall, precision=precision)
        v = 1.0 if answer == _text(req.sol) else 0.0
        return CaptionResult(recall=v, precision=v)

    async def _enter(self, path: str, n: int) -> Optional[JSONResponse]:
        with self._lock:
            self.requests.append((path, n))
            fail = len(self.requests) <= self.fail_first
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            deadline = time.monotonic() + HOLD_LIMIT_S
            while self.max_in_flight < self.hold_until_in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
        finally:
            with self._lock:
                self.in_flight -= 1
        if fail:
            return JSONResponse({"detail": f"scripted failure {self.fail_status}"}, status_code=self.fail_status)
        return None

    def _record(self, items: list) -> None:
        with self._lock:
            self.items.extend(items)

    @staticmethod
    def _single(result):
        if isinstance(result, ItemError):
            return JSONResponse({"detail": result.error, "reason": result.error, "permanent": result.permanent},
                                status_code=422)
        return result

    # --- app -----------------------------------------------------------------------------------
    def _make_app(self) -> FastAPI:
        app = FastAPI()
        stub = self

        @app.middleware("http")
        async def bearer_auth(request, call_next):
            if stub.token and request.headers.get("authorization") != f"Bearer {stub.token}":
                return JSONResponse({"detail": "missing or invalid bearer token"}, status_code=401)
            return await call_next(request)

        @app.get(HEALTH_PATH)
        async def health() -> Health:
            return Health(status="ok", model=f"stub-{stub.kind}", backend="stub", ready=True)

        if self.kind == "qwen":

            @app.post(PREDICT_PATH)
            async def predict(req: JudgeRequest):
                failed = await stub._enter(PREDICT_PATH, 1)
                if failed is not None:
                    return failed
                stub._record([req])
                return stub._single(stub._score_qwen(req))

            if self.batch_endpoint:

                @app.post(PREDICT_BATCH_PATH)
                async def predict_batch(req: JudgeBatchRequest):
                    failed = await stub._enter(PREDICT_BATCH_PATH, len(req.items))
                    if failed is not None:
                        return failed
                    stub._record(list(req.items))
                    results = [stub._score_qwen(r) for r in req.items]
                    return JudgeBatchResponse(results=results, unparseable=sum(
                        getattr(r, "verdict", "") == "unparseable" for r in results))

        else:

            @app.post(PREDICT_PATH)
            async def predict_caption(req: CaptionRequest):
                failed = await stub._enter(PREDICT_PATH, 1)
                if failed is not None:
                    return failed
                stub._record([req])
                return stub._single(stub._score_caption(req))

            if self.batch_endpoint:

                @app.post(PREDICT_BATCH_PATH)
                async def predict_caption_batch(req: CaptionBatchRequest):
                    failed = await stub._enter(PREDICT_BATCH_PATH, len(req.items))
                    if failed is not None:
                        return failed
                    stub._record(list(req.items))
                    return CaptionBatchResponse(results=[stub._score_caption(r) for r in req.items])

        return app

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "StubJudge":
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_level="warning", access_log=False,
            lifespan="off", timeout_graceful_shutdown=1, timeout_keep_alive=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="stub-judge", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("stub judge server did not start")
            time.sleep(0.005)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> "StubJudge":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.items.clear()
            self.max_in_flight = 0

    def count(self, path: Optional[str] = None) -> int:
        with self._lock:
            return sum(1 for p, _ in self.requests if path is None or p == path)
