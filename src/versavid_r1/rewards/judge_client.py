"""Async client of the judge services (Qwen2.5 judge: DarkEventInfer, MixVidQA; AutoDQ caption judge).

What it guarantees, so that a slow or dead judge never hangs or silently corrupts training:

* **Concurrency.** All items of one `score()` call are sent at once, limited by an
  `asyncio.Semaphore` (`max_concurrency` requests in flight per event loop). Several items for one
  judge go to the service's batch endpoint (`PREDICT_BATCH_PATH`) in chunks of `max_batch_size`;
  a single item uses `PREDICT_PATH`. B×G items take about one request's latency, not B×G of them.
* **Replicas.** Each judge has one or more base URLs; requests go round-robin, and a retry goes to
  the replica after the one that failed.
* **Bounded waits.** Every HTTP request has a timeout (`timeout_s`, connect `connect_timeout_s`).
  Connection errors, timeouts, HTTP 5xx, 408 and 429 are retried `retries` times with exponential
  backoff (`backoff_s`·2^k, at most `backoff_max_s`, plus up to `jitter`·delay of random jitter).
  The longest possible wait of one item is therefore bounded by
  (retries + 1) · (timeout_s + queueing behind the semaphore) + Σ backoffs.
* **Permanent errors.** An error answer whose JSON body says `"permanent": true`
  (`protocol.ErrorBody`, e.g. a caption model that cannot produce the JSON AutoDQ needs) is not retried:
  retrying cannot help. A batch that failed this way is re-sent item by item, so only the affected items
  fail; those are then handled like an outage after its retries (skipped or raised).
* **Loud failures.** Other 4xx answers (a 422 is a client/server protocol bug) are never retried and
  always raise `JudgeError` with the response body, whatever `on_judge_error` says. After the last
  retry, or on a malformed reply (bad JSON, wrong number of results, a score outside the task's
  range), `on_judge_error="raise"` (default) raises `JudgeError` naming the URL and the cause;
  `"skip"` returns `None` for the affected items (TRL leaves them out) and counts them. Never a
  silent 0.
* **Cache.** A bounded LRU cache keyed by (judge, problem type, question, ground truth, extracted
  answer) holds successful results; identical keys within one call become one request item. The
  caption judge does not receive the question, so its key uses "" for it. Failures are not cached.
* **Event loops.** The httpx client and the semaphore are created lazily per running event loop
  (TRL runs async reward functions on its own daemon-thread loop; scripts may call `asyncio.run`
  several times). Nothing is bound to a loop at construction, so the client can be built at import.
  Call `aclose()` on the loop that used it (or `close()`) to release connections.
* **Counters.** `stats` (a `JudgeStats`) counts calls, cache hits, retries, failures, skipped,
  requests, batch requests, unparseable verdicts and latency; `stats.snapshot()` / `delta()` give
  per-step numbers for logging.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import math
import random
import threading
import time
import weakref
from typing import Any, Iterable, Literal, Mapping, Optional, Sequence, Union

import httpx
from pydantic import ValidationError

from versavid_r1 import tasks
from versavid_r1.protocol import (
    HEALTH_PATH,
    PREDICT_BATCH_PATH,
    PREDICT_PATH,
    UNPARSEABLE,
    CaptionBatchRequest,
    CaptionBatchResponse,
    CaptionResult,
    Health,
    JudgeBatchRequest,
    JudgeBatchResponse,
    JudgeResult,
)
from versavid_r1.rewards.judge_items import JudgeError, JudgeItem, JudgeStats, Result, empty_result, request_model

logger = logging.getLogger(__name__)

OnJudgeError = Literal["raise", "skip"]
ON_JUDGE_ERROR: tuple[str, ...] = ("raise", "skip")
# HTTP statuses worth retrying besides 5xx: request timeout, too many requests.
RETRY_STATUSES = frozenset({408, 429})
ERROR_BODY_CHARS = 2000

class _LoopState:
    def __init__(self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore) -> None:
        self.client = client
        self.semaphore = semaphore


def _normalise_urls(urls: Union[str, Iterable[str], None]) -> tuple[str, ...]:
    if urls is None:
        return ()
    if isinstance(urls, str):
        urls = [u for u in urls.split(",")]
    out = tuple(u.strip().rstrip("/") for u in urls if u and u.strip())
    for u in out:
        if not (u.startswith("http://") or u.startswith("https://")):
            raise ValueError(f"judge URL must start with http:// or https://, got {u!r}")
    return out


class JudgeClient:
    """Async HTTP client of the judge services (see the module docstring)."""

    def __init__(
        self,
        urls: Mapping[str, Union[str, Sequence[str]]],
        *,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        jitter: float = 0.1,
        max_concurrency: int = 32,
        max_batch_size: int = 16,
        use_batch_endpoint: bool = True,
        cache_size: int = 50_000,
        on_judge_error: OnJudgeError = "raise",
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        """`urls`: judge name (`tasks.QWEN_JUDGE`, `tasks.CAPTION_JUDGE`) → base URL(s).
        `headers` (e.g. a bearer token) are sent with every request; `self.headers` may be updated
        later and applies to the next request."""
        self.urls: dict[str, tuple[str, ...]] = {}
        for judge, judge_urls in urls.items():
            if judge not in (tasks.QWEN_JUDGE, tasks.CAPTION_JUDGE):
                raise ValueError(f"unknown judge {judge!r}; judges: {tasks.QWEN_JUDGE!r}, {tasks.CAPTION_JUDGE!r}")
            self.urls[judge] = _normalise_urls(judge_urls)
        if on_judge_error not in ON_JUDGE_ERROR:
            raise ValueError(f"on_judge_error must be one of {ON_JUDGE_ERROR}, got {on_judge_error!r}")
        for name, value in (("timeout_s", timeout_s), ("connect_timeout_s", connect_timeout_s)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0 (no unbounded waits), got {value!r}")
        if retries < 0 or max_concurrency < 1 or max_batch_size < 1 or cache_size < 0:
            raise ValueError("retries and cache_size must be >= 0, max_concurrency and max_batch_size >= 1")
        if backoff_s < 0 or backoff_max_s < 0 or jitter < 0:
            raise ValueError("backoff_s, backoff_max_s and jitter must be >= 0")
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(min(connect_timeout_s, timeout_s))
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.jitter = float(jitter)
        self.max_concurrency = int(max_concurrency)
        self.max_batch_size = int(max_batch_size)
        self.use_batch_endpoint = bool(use_batch_endpoint)
        self.cache_size = int(cache_size)
        self.on_judge_error: OnJudgeError = on_judge_error
        self.headers = dict(headers or {})
        self.stats = JudgeStats()
        self._cache: "collections.OrderedDict[tuple, Result]" = collections.OrderedDict()
        self._cache_lock = threading.Lock()
        self._rr = {judge: itertools.count() for judge in self.urls}
        self._no_batch: set[str] = set()  # judges whose service has no batch endpoint (404/405)
        self._states: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]" = (
            weakref.WeakKeyDictionary()
        )
        self._states_lock = threading.Lock()

    # --- configuration helpers ---------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Any) -> "JudgeClient":
        """Build from a `RewardConfig` (or any object with the same attribute names)."""
        return cls(
            {tasks.QWEN_JUDGE: cfg.qwen_judge_urls, tasks.CAPTION_JUDGE: cfg.caption_judge_urls},
            timeout_s=cfg.timeout_s,
            connect_timeout_s=cfg.connect_timeout_s,
            retries=cfg.retries,
            backoff_s=cfg.backoff_s,
            backoff_max_s=cfg.backoff_max_s,
            jitter=cfg.jitter,
            max_concurrency=cfg.max_concurrency,
            max_batch_size=cfg.max_batch_size,
            use_batch_endpoint=cfg.use_batch_endpoint,
            cache_size=cfg.cache_size,
            on_judge_error=cfg.on_judge_error,
        )

    def __repr__(self) -> str:
        return (
            f"JudgeClient(urls={self.urls}, timeout_s={self.timeout_s}, retries={self.retries}, "
            f"max_concurrency={self.max_concurrency}, max_batch_size={self.max_batch_size}, "
            f"on_judge_error={self.on_judge_error!r})"
        )

    # --- per-loop resources --------------------------------------------------------------------
    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._states_lock:
            state = self._states.get(loop)
            if state is None:
                # Drop the resources of loops that have been closed meanwhile (asyncio.run per call).
                for old in [lp for lp in self._states if lp.is_closed()]:
                    del self._states[old]
                client = httpx.AsyncClient(
                    timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
                    limits=httpx.Limits(
                        max_connections=self.max_concurrency,
                        max_keepalive_connections=self.max_concurrency,
                    ),
                    trust_env=False,  # never route a localhost judge through an HTTP proxy
                )
                state = _LoopState(client, asyncio.Semaphore(self.max_concurrency))
                self._states[loop] = state
            return state

    async def aclose(self) -> None:
        """Close the HTTP connections of the running loop (other loops' clients are dropped)."""
        loop = asyncio.get_running_loop()
        with self._states_lock:
            state = self._states.pop(loop, None)
            for old in [lp for lp in self._states if lp.is_closed()]:
                del self._states[old]
        if state is not None:
            await state.client.aclose()

    async def __aenter__(self) -> "JudgeClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # --- cache ---------------------------------------------------------------------------------
    def _cache_get(self, key: tuple) -> Optional[Result]:
        if self.cache_size <= 0:
            return None
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def _cache_put(self, key: tuple, value: Result) -> None:
        if self.cache_size <= 0:
            return
        with self._cache_lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def cache_len(self) -> int:
        with self._cache_lock:
            return len(self._cache)

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    # --- public API ----------------------------------------------------------------------------
    async def score(self, items: Sequence[JudgeItem], errors: Optional[list] = None) -> list[Optional[Result]]:
        """Score items concurrently. Returns one result per item: `JudgeResult` (DarkEventInfer,
        MixVidQA: `.output`), `CaptionResult` (caption: `.recall`, `.precision`), or None for an
        item that failed with `on_judge_error="skip"`. Raises `JudgeError` otherwise.

        `errors`, when given (a list as long as `items`), receives the `JudgeError` of each skipped item,
        so a caller can keep the judge's reason (evaluation records it)."""
        results: list[Optional[Result]] = [None] * len(items)
        pending: dict[tuple, list[int]] = {}
        first: dict[tuple, JudgeItem] = {}
        hits = empty = 0
        for i, item in enumerate(items):
            if not item.answer.strip():
                results[i] = empty_result(item)
                empty += 1
                continue
            key = item.key()
            cached = self._cache_get(key)
            if cached is not None:
                results[i] = cached
                hits += 1
            elif key in pending:
                pending[key].append(i)
                hits += 1
            else:
                pending[key] = [i]
                first[key] = item
        self.stats.add(cache_hits=hits, empty=empty)
        if not pending:
            return results

        by_judge: dict[str, list[tuple[tuple, JudgeItem]]] = collections.defaultdict(list)
        for key, item in first.items():
            by_judge[item.judge].append((key, item))
        chunks: list[tuple[str, list[tuple[tuple, JudgeItem]]]] = []
        for judge, entries in by_judge.items():
            if not self.urls.get(judge):
                raise JudgeError(judge, "<no URL>", f"no URL configured for judge {judge!r}", attempts=0, fatal=True)
            size = self.max_batch_size if self.use_batch_endpoint else 1
            for start in range(0, len(entries), size):
                chunks.append((judge, entries[start:start + size]))

        outcomes = await asyncio.gather(
            *(self._score_chunk(judge, [item for _, item in chunk]) for judge, chunk in chunks),
            return_exceptions=True,
        )
        error: Optional[BaseException] = None

        def failed(keys: list[tuple], exc: BaseException) -> None:
            nonlocal error
            n_rows = sum(len(pending[key]) for key in keys)
            self.stats.add(failures=len(keys))
            if isinstance(exc, JudgeError) and not exc.fatal and self.on_judge_error == "skip":
                self.stats.add(skipped=n_rows)
                logger.warning("%s; %d item(s) skipped (on_judge_error=skip)", exc, n_rows)
                for key in keys:
                    for i in pending[key]:
                        if errors is not None:
                            errors[i] = exc
                return
            if error is None or (isinstance(exc, JudgeError) and exc.fatal and not _is_fatal(error)):
                error = exc

        for (judge, chunk), outcome in zip(chunks, outcomes):
            if isinstance(outcome, BaseException):
                failed([key for key, _ in chunk], outcome)
                continue
            for (key, _), result in zip(chunk, outcome):
                if isinstance(result, JudgeError):  # a permanent error of this item only
                    failed([key], result)
                    continue
                self._cache_put(key, result)
                for i in pending[key]:
                    results[i] = result
        if error is not None:
            raise error
        return results

    async def score_one(self, item: JudgeItem) -> Optional[Result]:
        return (await self.score([item]))[0]

    async def health(self) -> dict[str, Union[Health, str]]:
        """GET /health of every configured URL: a `Health` per URL, or the error text."""
        state = self._state()

        async def one(url: str) -> tuple[str, Union[Health, str]]:
            try:
                resp = await state.client.get(url + HEALTH_PATH, timeout=min(self.timeout_s, 10.0), headers=self.headers)
                resp.raise_for_status()
                return url, Health.model_validate(resp.json())
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                return url, f"{type(exc).__name__}: {exc}"

        urls = [u for judge_urls in self.urls.values() for u in judge_urls]
        return dict(await asyncio.gather(*(one(u) for u in urls)))

    def close(self) -> None:
        """Drop every loop's HTTP client (synchronous; prefer `await aclose()` on the loop).
        Clients of loops that are already closed cannot be closed any more, only dropped."""
        with self._states_lock:
            states = list(self._states.items())
            self._states.clear()
        for loop, state in states:
            if loop.is_closed():
                continue
            try:
                if loop.is_running():
                    asyncio.run_coroutine_threadsafe(state.client.aclose(), loop)
                else:
                    loop.run_until_complete(state.client.aclose())
            except Exception:  # noqa: BLE001 - best effort
                logger.debug("closing a judge client failed", exc_info=True)

    # --- internals -----------------------------------------------------------------------------
    async def _score_chunk(self, judge: str, items: list[JudgeItem]) -> list[Union[Result, JudgeError]]:
        """One result per item; a `JudgeError` in place of a result is a permanent error of that item."""
        self.stats.add(calls=len(items))
        if len(items) > 1 and judge not in self._no_batch:
            try:
                return await self._request_batch(judge, items)
            except JudgeError as exc:
                if exc.permanent:  # one item the judge cannot score: find it, keep the others' results
                    logger.info("%s; sending the %d items of the batch one by one", exc, len(items))
                elif exc.status not in (404, 405):
                    raise
                else:
                    logger.warning("%s: no batch endpoint, sending items one by one", exc)
                    self._no_batch.add(judge)
        singles = await asyncio.gather(*(self._request_single(judge, item) for item in items), return_exceptions=True)
        for outcome in singles:
            if isinstance(outcome, BaseException) and not (isinstance(outcome, JudgeError) and outcome.permanent):
                raise outcome
        return list(singles)  # type: ignore[arg-type]

    async def _request_single(self, judge: str, item: JudgeItem) -> Result:
        payload = request_model(item).model_dump()
        data, url = await self._post(judge, PREDICT_PATH, payload)
        model = CaptionResult if judge == tasks.CAPTION_JUDGE else JudgeResult
        try:
            result = model.model_validate(data)
        except ValidationError as exc:
            raise JudgeError(judge, url, f"malformed reply: {_short(exc)}") from exc
        self._check_result(judge, url, item, result)
        return result

    async def _request_batch(self, judge: str, items: list[JudgeItem]) -> list[Result]:
        if judge == tasks.CAPTION_JUDGE:
            payload = CaptionBatchRequest(items=[request_model(i) for i in items]).model_dump()
            response_model: Any = CaptionBatchResponse
        else:
            payload = JudgeBatchRequest(items=[request_model(i) for i in items]).model_dump()
            response_model = JudgeBatchResponse
        self.stats.add(batch_requests=1)
        data, url = await self._post(judge, PREDICT_BATCH_PATH, payload)
        try:
            parsed = response_model.model_validate(data)
        except ValidationError as exc:
            raise JudgeError(judge, url, f"malformed batch reply: {_short(exc)}") from exc
        if len(parsed.results) != len(items):
            raise JudgeError(judge, url, f"batch reply has {len(parsed.results)} results for {len(items)} items")
        for item, result in zip(items, parsed.results):
            self._check_result(judge, url, item, result)
        return list(parsed.results)

    def _check_result(self, judge: str, url: str, item: JudgeItem, result: Result) -> None:
        if isinstance(result, CaptionResult):
            for name in ("recall", "precision"):
                v = getattr(result, name)
                if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                    raise JudgeError(judge, url, f"{name}={v!r} outside [0, 1]")
            return
        lo, hi = tasks.TASK_REWARD_RANGE[item.problem_type]
        if not (math.isfinite(result.output) and lo <= result.output <= hi):
            raise JudgeError(judge, url, f"{item.problem_type} score {result.output!r} outside [{lo}, {hi}]")
        if result.verdict == UNPARSEABLE:
            self.stats.add(unparseable=1)

    def _next_index(self, judge: str) -> int:
        return next(self._rr[judge])

    def _url(self, judge: str, index: int) -> str:
        urls = self.urls[judge]
        return urls[index % len(urls)]

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max_s, self.backoff_s * (2 ** attempt))
        return delay * (1.0 + self.jitter * random.random())

    async def _post(self, judge: str, path: str, payload: dict) -> tuple[Any, str]:
        """POST with retries. Returns (parsed JSON, URL that answered)."""
        state = self._state()
        attempts = self.retries + 1
        url = ""
        cause = ""
        status: Optional[int] = None
        # Round-robin over replicas; a retry goes to the replica after the one that just failed.
        first = self._next_index(judge)
        for attempt in range(attempts):
            url = self._url(judge, first + attempt) + path
            status = None
            async with state.semaphore:
                self.stats.add(requests=1)
                t0 = time.perf_counter()
                try:
                    resp = await state.client.post(url, json=payload, headers=self.headers)
                except httpx.TimeoutException as exc:
                    cause = f"timed out ({type(exc).__name__}, timeout {self.timeout_s:g} s)"
                except httpx.TransportError as exc:
                    cause = f"{type(exc).__name__}: {exc or 'connection failed'}"
                else:
                    status = resp.status_code
                    if status < 300:
                        self.stats.observe_latency(time.perf_counter() - t0)
                        try:
                            return resp.json(), url
                        except ValueError as exc:
                            raise JudgeError(judge, url, f"reply is not JSON: {resp.text[:200]!r}",
                                             attempts=attempt + 1, status=status) from exc
                    body = resp.text[:ERROR_BODY_CHARS]
                    cause = f"HTTP {status}: {body}"
                    if _says_permanent(resp):  # retrying cannot help (protocol.ErrorBody)
                        raise JudgeError(judge, url, cause, attempts=attempt + 1, status=status, permanent=True)
                    if not (status >= 500 or status in RETRY_STATUSES):
                        raise JudgeError(judge, url, cause, attempts=attempt + 1, status=status, fatal=True)
            if attempt + 1 < attempts:
                self.stats.add(retries=1)
                delay = self._backoff(attempt)
                logger.info("judge %r at %s: %s; retry %d/%d in %.2f s", judge, url, cause,
                            attempt + 1, self.retries, delay)
                await asyncio.sleep(delay)
        raise JudgeError(judge, url, cause, attempts=attempts, status=status)


def _says_permanent(resp: httpx.Response) -> bool:
    """Does an error answer's body carry `"permanent": true` (`protocol.ErrorBody`)?"""
    try:
        body = resp.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("permanent") is True


def _is_fatal(exc: BaseException) -> bool:
    return isinstance(exc, JudgeError) and exc.fatal


def _short(exc: Exception, limit: int = 300) -> str:
    text = str(exc).replace("\n", " ")
    return text[:limit]
