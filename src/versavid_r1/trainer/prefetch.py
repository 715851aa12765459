"""Build the next batches' prompt inputs (video decoding + the HF video processor) in a background thread.

Why: decoding a row's video and running the Qwen2(.5)-VL processor on its frames happens at the start of each
generation, on the training step's critical path (about 1 s per step of 4 rows on a CPU, BENCHMARKS.md §5).
The trainer hands the rows of the batches the Trainer has already fetched (its gradient-accumulation window
plus one batch of look-ahead) to `PromptPrefetcher`, which builds them one by one in a worker thread while
the model trains; `take` returns a finished (or finishing) build. The decoded clips go through the same
per-process clip cache (`versavid_r1.data.video`, thread-safe) as any other load.

Rows taken recently (the last `capacity`) are not queued again: TRL repeats a generation batch
`steps_per_generation x num_iterations` times, and those repeats need no second build. The look-ahead
stops at the end of an epoch, so the first batch of an epoch is built when it is needed.

A build that fails in the background is dropped silently: the trainer then builds that row itself, on the
main thread, where a failure is raised and handled as without prefetching (same error, same row). A read
that timed out (`versavid_r1.data.read_deadline`) is raised as is: trying again would wait as long again. Decoding
is I/O and C code (PyAV/decord) and the processor is torch/numpy work, both of which release the GIL.
"""
from __future__ import annotations

import collections
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Optional

from versavid_r1.data.read_deadline import VideoReadTimeout

log = logging.getLogger(__name__)


class PromptPrefetcher:
    """Background builds of `build(row)`, keyed by `key(row)`; at most `capacity` kept un-taken."""

    def __init__(self, build: Callable[[dict], Any], key: Callable[[dict], str], capacity: int = 64):
        self._build = build
        self._key = key
        self._capacity = capacity
        self._pending: "collections.OrderedDict[str, Future]" = collections.OrderedDict()
        self._taken: "collections.OrderedDict[str, None]" = collections.OrderedDict()  # skip re-submits
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="versavid-prefetch")
        self.submitted = 0
        self.hits = 0

    def submit(self, rows: Iterable[dict]) -> None:
        """Queue every row not queued, pending or recently taken (repeats of a generation batch are skipped)."""
        with self._lock:
            for row in rows:
                key = self._key(row)
                if key in self._pending or key in self._taken:
                    continue
                self._pending[key] = self._pool.submit(self._run, row)
                self.submitted += 1
                while len(self._pending) > self._capacity:
                    _, old = self._pending.popitem(last=False)
                    old.cancel()

    def take(self, row: dict) -> Optional[Any]:
        """The background build of `row` (waiting for it if it is running), or None if there is none or it failed."""
        key = self._key(row)
        with self._lock:
            future = self._pending.pop(key, None)
            self._taken[key] = None
            while len(self._taken) > self._capacity:
                self._taken.popitem(last=False)
        if future is None or future.cancelled():
            return None
        try:
            result = future.result()
        except VideoReadTimeout:  # a second try would wait as long again: the row's error, as is
            raise
        except Exception as exc:  # rebuilt on the main thread, where the error is raised and handled
            log.debug("background build of a row failed (%s: %s); building it on the main thread",
                      type(exc).__name__, exc)
            return None
        self.hits += 1
        return result

    def _run(self, row: dict) -> Any:
        return self._build(row)

    def close(self) -> None:
        with self._lock:
            for future in self._pending.values():
                future.cancel()
            self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)


class LookAhead:
    """An iterator that can show its next item without consuming it (None at the end)."""

    _END = object()

    def __init__(self, inner: Iterator):
        self.inner = inner
        self._buffer: Any = None
        self._has = False

    def __iter__(self) -> "LookAhead":
        return self

    def __next__(self) -> Any:
        if self._has:
            self._has = False
            item, self._buffer = self._buffer, None
            return item
        return next(self.inner)

    def peek(self) -> Optional[Any]:
        if not self._has:
            try:
                self._buffer = next(self.inner)
            except StopIteration:
                return None
            self._has = True
        return self._buffer
