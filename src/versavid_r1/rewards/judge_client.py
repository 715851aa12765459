"""Async client of the judge services (Qwen2.5 judge: DarkEventInfer, MixVidQA; AutoDQ caption judge).

What it guarantees, so that a slow, dead or misbehaving judge never hangs or silently corrupts training:

* **Concurrency.** All items of one `score()` call are sent at once, limited by an
  `asyncio.Semaphore` (`max_concurrency` requests in flight per event loop). Several items for one
  judge go to the service's batch endpoint (`PREDICT_BATCH_PATH`) in chunks of `max_batch_size`;
  a single item uses `PREDICT_PATH`. B×G items take about one request's latency, not B×G of them.
* **Within the judge's limits** (versavid_r1.judge_units). Each judge's request limits (`limits`: its
  /health's, set by `set_limits`, else the services' shipped defaults), counted in its own units (body
  bytes, characters, prompt tokens): an item too large to send at all is not sent (a permanent failure
  of that item: counted, never rewarded); batches are packed within the body, item-count and token
  limits; a batch the service still refuses as over a limit (413, a 422 with `over_limit`) is split
  until the refused item is alone, which under `on_judge_error="skip"` is skipped and counted.
* **Bounded waits** (versavid_r1.rewards.judge_transport): `timeout_s` is a total deadline per HTTP
  attempt, retries go round-robin over replicas with backoff. The longest possible wait of one item
  is (retries + 1) · (timeout_s + queueing behind the semaphore) + Σ backoffs.
* **Failures are never rewards.** Three kinds of item failure (`JudgeFailure`):
  - *outage* (after the last retry, or a malformed reply): `on_judge_error="raise"` (default) raises
    `JudgeError` naming the URL and the cause; `"skip"` leaves the item unscored and counts it;
  - *unparseable verdict* (the judge answered without a clean verdict) and *permanent* per-item
    failure (the service said the item cannot be scored, e.g. a caption whose replies were never
    JSON; versavid_r1.protocol): the item is left unscored and counted, never rewarded 0 — under
    either setting. Under `raise`, once more than `max_unparseable_rate` × `unparseable_window` of
    the last `unparseable_window` judged items failed this way, `JudgeError` stops the run (the
    judge is broken, not the answers);
  - *bad request* (any other 4xx): always raises (`JudgeError.fatal`), whatever `on_judge_error` says.
  `score()` returns None for an unscored item; `score_outcomes()` returns the `JudgeFailure`.
* **Injection.** Answers are screened by a lexical detector (versavid_r1.rewards.injection), and with
  `decoy_check` each item carries `decoys_per_item` decoy ground truths of other rows (`decoys`, a
  `versavid_r1.rewards.decoys.DecoyPool` fed with every item scored and, by the trainer, the training
  rows): the judges do not trust a positive score that a decoy matches as well (`SUSPECTED_INJECTION`,
  scored 0). Both are logged and counted (`stats.suspected_injection`, `injection_rejected`,
  `decoy_checked`, `decoy_unavailable`). Without `decoy_check` items carry an empty decoy list: no check.
* **Cache.** A bounded LRU cache keyed by (judge, problem type, question, ground truth, extracted
  answer) holds successful results; identical keys within one call become one request item. The
  caption judge does not receive the question, so its key uses "" for it. Failures are not cached.
* **Event loops.** Connections are per running event loop and created lazily, so the client can be
  built at import and used from TRL's reward thread. Call `aclose()` on the loop that used it (or
  `close()`) to release connections.
* **Counters.** `stats` (a `JudgeStats`) counts calls, cache hits, retries, failures, skipped,
  requests, batch requests, unparseable verdicts, permanent failures, suspected injections and
  latency; `stats.snapshot()` / `delta()` give per-step numbers for logging.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import math
from typing import Any, Iterable, Literal, Mapping, Optional, Sequence, Union

from pydantic import ValidationError

from versavid_r1 import tasks
from versavid_r1.judge_units import (
    default_limits, field_problems, item_bytes, item_problems, pack_batches, prompt_token_bound,
)
from versavid_r1.protocol import (
    HEALTH_PATH,
    MAX_DECOYS_PER_ITEM,
    PREDICT_BATCH_PATH,
    PREDICT_PATH,
    CaptionBatchRequest,
    CaptionBatchResponse,
    CaptionResult,
    Health,
    JudgeBatchRequest,
    JudgeBatchResponse,
    JudgeLimits,
    JudgeResult,
)
from versavid_r1.rewards.decoys import DecoyPool, decoys_for
from versavid_r1.rewards.judge_items import (
    OUTAGE_FAILURE, JudgeError, JudgeFailure, JudgeItem, JudgeStats, Result, empty_result, request_model,
)
from versavid_r1.rewards.judge_outcomes import Outcome, OutcomePolicy, ResultCache
from versavid_r1.rewards.judge_transport import JudgeTransport

logger = logging.getLogger(__name__)

OnJudgeError = Literal["raise", "skip"]
ON_JUDGE_ERROR: tuple[str, ...] = ("raise", "skip")


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
        max_unparseable_rate: float = 0.1,
        unparseable_window: int = 100,
        headers: Optional[Mapping[str, str]] = None,
        decoy_check: bool = True,
        decoys_per_item: int = 1,
    ) -> None:
        """`urls`: judge name (`tasks.QWEN_JUDGE`, `tasks.CAPTION_JUDGE`) → base URL(s).
        `headers` (e.g. a bearer token) are sent with every request; `self.headers` may be updated
        later and applies to the next request. `decoy_check`, `decoys_per_item`: the decoys each item
        carries (module docstring); `self.decoys` is the pool they are drawn from."""
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
        if not (0.0 <= max_unparseable_rate <= 1.0) or unparseable_window < 1:
            raise ValueError("max_unparseable_rate must be in [0, 1] and unparseable_window >= 1")
        if not 1 <= int(decoys_per_item) <= MAX_DECOYS_PER_ITEM:
            raise ValueError(f"decoys_per_item must be within 1..{MAX_DECOYS_PER_ITEM}, got {decoys_per_item!r}")
        self.decoy_check = bool(decoy_check)
        self.decoys_per_item = int(decoys_per_item)
        self.decoys = DecoyPool()
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.max_concurrency = int(max_concurrency)
        self.max_batch_size = int(max_batch_size)
        self.use_batch_endpoint = bool(use_batch_endpoint)
        self.cache_size = int(cache_size)
        self.on_judge_error: OnJudgeError = on_judge_error
        self.max_unparseable_rate = float(max_unparseable_rate)
        self.unparseable_window = int(unparseable_window)
        self.stats = JudgeStats()
        self._transport = JudgeTransport(
            self.urls, self.stats, timeout_s=self.timeout_s,
            connect_timeout_s=float(min(connect_timeout_s, timeout_s)), retries=self.retries,
            backoff_s=float(backoff_s), backoff_max_s=float(backoff_max_s), jitter=float(jitter),
            max_concurrency=self.max_concurrency, headers=dict(headers or {}))
        self._cache = ResultCache(self.cache_size)
        self._no_batch: set[str] = set()  # judges whose service has no batch endpoint (404/405)
        self._outcomes = OutcomePolicy(self.stats, on_judge_error, self.max_unparseable_rate,
                                       self.unparseable_window)
        self.limits: dict[str, JudgeLimits] = {judge: default_limits(judge) for judge in self.urls}

    @property
    def headers(self) -> dict[str, str]:
        return self._transport.headers

    @headers.setter
    def headers(self, value: Mapping[str, str]) -> None:
        self._transport.headers = dict(value)

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
            max_unparseable_rate=cfg.max_unparseable_rate,
            unparseable_window=cfg.unparseable_window,
            decoy_check=cfg.decoy_check,
            decoys_per_item=cfg.decoys_per_item,
        )

    def __repr__(self) -> str:
        return (
            f"JudgeClient(urls={self.urls}, timeout_s={self.timeout_s}, retries={self.retries}, "
            f"max_concurrency={self.max_concurrency}, max_batch_size={self.max_batch_size}, "
            f"on_judge_error={self.on_judge_error!r}, decoy_check={self.decoy_check})"
        )

    async def aclose(self) -> None:
        """Close the HTTP connections of the running loop (other loops' clients are dropped)."""
        await self._transport.aclose()

    def close(self) -> None:
        """Drop every loop's HTTP client (synchronous; prefer `await aclose()` on the loop)."""
        self._transport.close()

    async def __aenter__(self) -> "JudgeClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def cache_len(self) -> int:
        return len(self._cache)

    def clear_cache(self) -> None:
        self._cache.clear()

    # --- public API ----------------------------------------------------------------------------
    async def score(self, items: Sequence[JudgeItem]) -> list[Optional[Result]]:
        """Score items concurrently. Returns one result per item: `JudgeResult` (DarkEventInfer,
        MixVidQA: `.output`), `CaptionResult` (caption: `.recall`, `.precision`), or None for an
        item the judge could not score (see the module docstring). Raises `JudgeError` otherwise."""
        return [None if isinstance(o, JudgeFailure) else o for o in await self.score_outcomes(items)]

    async def score_outcomes(self, items: Sequence[JudgeItem]) -> list[Outcome]:
        """Like `score`, but an unscored item gives its `JudgeFailure` (kind, reason, permanence)."""
        results: list[Optional[Outcome]] = [None] * len(items)
        pending: dict[tuple, list[int]] = {}
        first: dict[tuple, JudgeItem] = {}
        hits = empty = 0
        for i, item in enumerate(items):
            if not item.answer.strip() and item.judge != tasks.CAPTION_JUDGE:
                results[i] = empty_result(item)  # an empty caption goes to the judge: its AutoDQ rules decide
                empty += 1
                continue
            key = item.key()
            cached = self._cache.get(key)
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
            return results  # type: ignore[return-value]
        self._outcomes.screen(list(first.values()))
        first = self._with_decoys(first)

        chunks: list[tuple[str, list[tuple[tuple, JudgeItem]]]] = []
        by_judge: dict[str, list[tuple[tuple, JudgeItem]]] = collections.defaultdict(list)
        for key, item in first.items():
            by_judge[item.judge].append((key, item))
        unscorable: list[JudgeFailure] = []
        for judge, entries in by_judge.items():
            if not self.urls.get(judge):
                raise JudgeError(judge, "<no URL>", f"no URL configured for judge {judge!r}", attempts=0, fatal=True)
            fits, oversize = self._fit(judge, entries)
            for key, failure in oversize:  # never sent: the judge would refuse it (413/422)
                unscorable.append(failure)
                self.stats.add(failures=1, skipped=len(pending[key]))
                for i in pending[key]:
                    results[i] = failure
            chunks += [(judge, batch) for batch in fits]

        outcomes = await asyncio.gather(
            *(self._score_chunk(judge, [item for _, item in chunk]) for judge, chunk in chunks),
            return_exceptions=True,
        )
        error: Optional[BaseException] = None
        for (judge, chunk), outcome in zip(chunks, outcomes):
            if isinstance(outcome, BaseException):
                n_rows = sum(len(pending[key]) for key, _ in chunk)
                self.stats.add(failures=len(chunk))
                if isinstance(outcome, JudgeError) and not outcome.fatal and self.on_judge_error == "skip":
                    self.stats.add(skipped=n_rows)
                    logger.warning("%s; %d item(s) skipped (on_judge_error=skip)", outcome, n_rows)
                    for key, _ in chunk:
                        for i in pending[key]:
                            results[i] = JudgeFailure(OUTAGE_FAILURE, str(outcome))
                    continue
                if error is None or (isinstance(outcome, JudgeError) and outcome.fatal and not _is_fatal(error)):
                    error = outcome
                continue
            for (key, _), result in zip(chunk, outcome):
                if isinstance(result, JudgeFailure):
                    unscorable.append(result)
                    self.stats.add(failures=1, skipped=len(pending[key]))
                else:
                    self._cache.put(key, result)
                for i in pending[key]:
                    results[i] = result
        if error is not None:
            raise error
        self._outcomes.check_rate(len(first), unscorable)
        return results  # type: ignore[return-value]

    async def score_one(self, item: JudgeItem) -> Optional[Result]:
        return (await self.score([item]))[0]

    async def health(self) -> dict[str, Union[Health, str]]:
        """GET /health of every configured URL: a `Health` per URL, or the error text."""

        async def one(url: str) -> tuple[str, Union[Health, str]]:
            try:
                data = await self._transport.get_json(url + HEALTH_PATH, min(self.timeout_s, 10.0))
                return url, Health.model_validate(data)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                return url, f"{type(exc).__name__}: {exc}"

        urls = [u for judge_urls in self.urls.values() for u in judge_urls]
        return dict(await asyncio.gather(*(one(u) for u in urls)))

    def set_limits(self, judge: str, limits: JudgeLimits) -> None:
        """What `judge` accepts per request (its /health's `limits`; default: the shipped defaults)."""
        self.limits[judge] = limits

    # --- internals -----------------------------------------------------------------------------
    def _with_decoys(self, first: dict[tuple, JudgeItem]) -> dict[tuple, JudgeItem]:
        """The items to send, each with its decoys (an empty tuple: no decoy check)."""
        for item in first.values():
            self.decoys.add(item.problem_type, item.solution, item.question)
        out, unavailable = {}, 0
        for key, item in first.items():
            decoys: tuple[str, ...] = ()
            if self.decoy_check:
                decoys = decoys_for(self.decoys, item.problem_type, item.solution, item.question, item.answer,
                                    self.decoys_per_item)
                unavailable += not decoys
            out[key] = dataclasses.replace(item, decoys=decoys)
        if unavailable:
            self.stats.add(decoy_unavailable=unavailable)
            logger.info("%d judged item(s) had no decoy ground truth sharing no content word with theirs "
                           "(judge/decoy_unavailable): judged without the decoy check", unavailable)
        return out

    def _fit(self, judge: str, entries: list[tuple[tuple, JudgeItem]]):
        """(batches of entries within the judge's limits, [(key, failure)] of items too large to send at all)."""
        limits = self.limits[judge]
        keep, sizes, tokens, oversize = [], [], [], []
        for key, item in entries:
            request = request_model(item)
            problems = field_problems(request, limits) + [m for _, m in item_problems(request, limits)]
            if problems:
                oversize.append((key, self._outcomes.permanent(
                    f"judge {judge!r}: {item.problem_type} item not sent, too large for the judge: {problems[0]}")))
                continue
            keep.append((key, item))
            sizes.append(item_bytes(request))
            tokens.append(prompt_token_bound(request))
        per_request = self.max_batch_size if self.use_batch_endpoint else 1
        return [[keep[i] for i in batch] for batch in pack_batches(sizes, tokens, per_request, limits)], oversize

    async def _score_chunk(self, judge: str, items: list[JudgeItem]) -> list[Outcome]:
        self.stats.add(calls=len(items))
        return await self._send(judge, items)

    async def _send(self, judge: str, items: list[JudgeItem]) -> list[Outcome]:
        """One request for `items`; a batch the judge refuses as too large (413, a 422 that is not an item's
        permanent failure) is split in halves until the item it cannot take is alone (`_request_single`)."""
        if len(items) > 1 and judge not in self._no_batch:
            try:
                return await self._request_batch(judge, items)
            except JudgeError as exc:
                if exc.over_limit:
                    half = len(items) // 2
                    logger.info("%s; splitting the batch of %d items", exc, len(items))
                    first, second = await asyncio.gather(self._send(judge, items[:half]),
                                                         self._send(judge, items[half:]))
                    return first + second
                if exc.status not in (404, 405):
                    raise
                logger.warning("%s: no batch endpoint, sending items one by one", exc)
                self._no_batch.add(judge)
        singles = await asyncio.gather(*(self._request_single(judge, item) for item in items), return_exceptions=True)
        for outcome in singles:
            if isinstance(outcome, BaseException):
                raise outcome
        return list(singles)  # type: ignore[arg-type]

    async def _request_single(self, judge: str, item: JudgeItem) -> Outcome:
        payload = request_model(item).model_dump()
        try:
            data, url = await self._transport.post(judge, PREDICT_PATH, payload)
        except JudgeError as exc:
            if exc.permanent:
                return self._outcomes.permanent(str(exc))
            if exc.over_limit and self.on_judge_error == "skip":  # this item, not the run
                return self._outcomes.permanent(f"the judge refused this {item.problem_type} item: {exc}")
            raise
        model = CaptionResult if judge == tasks.CAPTION_JUDGE else JudgeResult
        try:
            result = model.model_validate(data)
        except ValidationError as exc:
            raise JudgeError(judge, url, f"malformed reply: {_short(exc)}") from exc
        return self._outcomes.classify(judge, url, item, result)

    async def _request_batch(self, judge: str, items: list[JudgeItem]) -> list[Outcome]:
        if judge == tasks.CAPTION_JUDGE:
            payload = CaptionBatchRequest(items=[request_model(i) for i in items]).model_dump()
            response_model: Any = CaptionBatchResponse
        else:
            payload = JudgeBatchRequest(items=[request_model(i) for i in items]).model_dump()
            response_model = JudgeBatchResponse
        self.stats.add(batch_requests=1)
        data, url = await self._transport.post(judge, PREDICT_BATCH_PATH, payload)
        try:
            parsed = response_model.model_validate(data)
        except ValidationError as exc:
            raise JudgeError(judge, url, f"malformed batch reply: {_short(exc)}") from exc
        if len(parsed.results) != len(items):
            raise JudgeError(judge, url, f"batch reply has {len(parsed.results)} results for {len(items)} items")
        return [self._outcomes.classify(judge, url, item, result) for item, result in zip(items, parsed.results)]

def _is_fatal(exc: BaseException) -> bool:
    return isinstance(exc, JudgeError) and exc.fatal


def _short(exc: Exception, limit: int = 300) -> str:
    text = str(exc).replace("\n", " ")
    return text[:limit]
