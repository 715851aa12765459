"""The judge client's HTTP layer: per-event-loop connections, a total deadline per request, retries.

* **Deadline.** `timeout_s` bounds each HTTP attempt from sending to the last byte of the reply
  (`asyncio.timeout` around the whole exchange). httpx's own timeouts only bound the gap between
  two reads, so a judge that trickles one byte a second would otherwise hold a request for minutes.
  When the deadline cancels a request, httpx closes its connection and the service sees the client
  go, so it drops the work (versavid_r1.judges.disconnect).
* **Retries.** Connection errors, timeouts, HTTP 5xx, 408 and 429 are retried `retries` times with
  exponential backoff (`backoff_s`·2^k, at most `backoff_max_s`, plus up to `jitter`·delay), each
  retry on the replica after the one that failed.
* **Errors that are not retried.** A 422 whose body says `"permanent": true` is a permanent failure
  of that item (`JudgeError.permanent`); a 413, or a 422 saying `"over_limit": true`, is a request over
  one of the service's limits (`JudgeError.over_limit`, also fatal: the client splits the batch to find
  the item); any other 4xx is a protocol bug (`JudgeError.fatal`).
* **Event loops.** The httpx client and the semaphore are created lazily per running event loop
  (TRL runs async reward functions on its own daemon-thread loop; scripts may call `asyncio.run`
  several times), so nothing is bound to a loop at construction.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import random
import threading
import time
import weakref
from typing import Any, Mapping

import httpx

from versavid_r1.judge_units import encode_body
from versavid_r1.protocol import OVER_LIMIT_KEY, PERMANENT_KEY
from versavid_r1.rewards.judge_items import JudgeError, JudgeStats

logger = logging.getLogger("versavid_r1.rewards.judge_client")

# HTTP statuses worth retrying besides 5xx: request timeout, too many requests.
RETRY_STATUSES = frozenset({408, 429})
ERROR_BODY_CHARS = 2000


class _LoopState:
    def __init__(self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore) -> None:
        self.client = client
        self.semaphore = semaphore


def _marked(resp: httpx.Response, key: str) -> bool:
    """True for a 422 whose JSON body says `key: true` (versavid_r1.protocol)."""
    if resp.status_code != 422:
        return False
    try:
        body = resp.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get(key) is True


def _permanent(resp: httpx.Response) -> bool:
    """True for a 422 that marks a permanent failure of the item."""
    return _marked(resp, PERMANENT_KEY)


def _over_limit(resp: httpx.Response) -> bool:
    """True when the service refused the request as over one of its limits (413, or a marked 422)."""
    return resp.status_code == 413 or _marked(resp, OVER_LIMIT_KEY)


class JudgeTransport:
    """POSTs to the judges' replicas with a deadline, retries and backoff (see the module docstring)."""

    def __init__(self, urls: Mapping[str, tuple[str, ...]], stats: JudgeStats, *, timeout_s: float,
                 connect_timeout_s: float, retries: int, backoff_s: float, backoff_max_s: float,
                 jitter: float, max_concurrency: int, headers: dict[str, str]) -> None:
        self.urls = urls
        self.stats = stats
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.jitter = jitter
        self.max_concurrency = max_concurrency
        self.headers = headers   # the client's dict: updates apply to the next request
        self._rr = {judge: itertools.count() for judge in urls}
        self._states: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]" = (
            weakref.WeakKeyDictionary()
        )
        self._states_lock = threading.Lock()

    # --- per-loop resources --------------------------------------------------------------------
    def state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._states_lock:
            state = self._states.get(loop)
            if state is None:
                # Drop the resources of loops that have been closed meanwhile (asyncio.run per call).
                for old in [lp for lp in self._states if lp.is_closed()]:
                    del self._states[old]
                client = httpx.AsyncClient(
                    timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
                    limits=httpx.Limits(max_connections=self.max_concurrency,
                                        max_keepalive_connections=self.max_concurrency),
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

    def close(self) -> None:
        """Drop every loop's HTTP client (synchronous; prefer `await aclose()` on the loop)."""
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

    # --- requests --------------------------------------------------------------------------------
    async def get_json(self, url: str, timeout_s: float) -> Any:
        """GET `url` with a total deadline; raises on any error."""
        state = self.state()
        async with asyncio.timeout(timeout_s):
            resp = await state.client.get(url, timeout=timeout_s, headers=self.headers)
        resp.raise_for_status()
        return resp.json()

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max_s, self.backoff_s * (2 ** attempt))
        return delay * (1.0 + self.jitter * random.random())

    async def post(self, judge: str, path: str, payload: dict) -> tuple[Any, str]:
        """POST with retries. Returns (parsed JSON, URL that answered)."""
        state = self.state()
        # ensure_ascii: a lone surrogate travels as an escape (the service answers 422 naming the
        # field) instead of failing to encode here.
        body = encode_body(payload)
        headers = {**self.headers, "content-type": "application/json"}
        attempts = self.retries + 1
        url, cause, status = "", "", None
        urls = self.urls[judge]
        first = next(self._rr[judge])
        for attempt in range(attempts):
            url = urls[(first + attempt) % len(urls)] + path
            status = None
            async with state.semaphore:
                self.stats.add(requests=1)
                t0 = time.perf_counter()
                try:
                    async with asyncio.timeout(self.timeout_s):
                        resp = await state.client.post(url, content=body, headers=headers)
                except (TimeoutError, httpx.TimeoutException) as exc:
                    cause = f"timed out ({type(exc).__name__}, deadline {self.timeout_s:g} s per request)"
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
                    cause = f"HTTP {status}: {resp.text[:ERROR_BODY_CHARS]}"
                    if _permanent(resp):
                        raise JudgeError(judge, url, cause, attempts=attempt + 1, status=status,
                                         permanent=True)
                    if not (status >= 500 or status in RETRY_STATUSES):
                        raise JudgeError(judge, url, cause, attempts=attempt + 1, status=status, fatal=True,
                                         over_limit=_over_limit(resp))
            if attempt + 1 < attempts:
                self.stats.add(retries=1)
                delay = self._backoff(attempt)
                logger.info("judge %r at %s: %s; retry %d/%d in %.2f s", judge, url, cause,
                            attempt + 1, self.retries, delay)
                await asyncio.sleep(delay)
        raise JudgeError(judge, url, cause, attempts=attempts, status=status)
