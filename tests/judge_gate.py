"""Hold a judge service's generate calls until the test lets them run: timing-free tests of its scheduling.

The transformers backend (versavid_r1.judges.backends.transformers_backend) runs each micro-batch as one
`_generate_batch` call in its lane's thread. `GenerationGate` wraps that method of a backend served in this
process (`BackgroundServer`): every held call records the predictions of its rows, then waits for a permit
(`release`, or `open` for all later calls). A forward pre-hook on the model counts the decoding steps each
call makes. So a test says "the lone verdict ran in the second generate call" or "the abandoned call made one
forward", whatever the machine's speed: the assertions are about which work ran, not about how long it took.

    backend = app.state.judge.backend
    with GenerationGate(backend) as gate:
        ... send requests ...
        gate.wait_held(1)        # the first call has its rows and waits
        gate.release()           # let it run
"""
from __future__ import annotations

import threading
import time
from typing import Optional

WAIT_S = 120.0   # a bound for a test that is already failing; passing tests never wait this long


class GenerationGate:
    """See the module docstring. `lane`: hold only that lane's calls (None: every lane)."""

    def __init__(self, backend, lane: Optional[str] = None):
        self.backend = backend
        self.lane = lane
        self.calls: list[list[str]] = []        # predictions of each held call's rows, in arrival order
        self.forwards: list[int] = []           # model forwards of each held call (filled as it runs)
        self._permits = threading.Semaphore(0)
        self._opened = threading.Event()
        self._changed = threading.Condition()
        self._running: dict[int, int] = {}      # generate thread id -> index of the gated call it runs
        self._done = 0
        self._original = None
        self._hook = None

    # --- installing -----------------------------------------------------------------------------
    def __enter__(self) -> "GenerationGate":
        self._original = self.backend._generate_batch
        self.backend._generate_batch = self._gated
        self._hook = self.backend.model.register_forward_pre_hook(self._count_forward)
        return self

    def __exit__(self, *exc) -> None:
        self.open()
        self.backend._generate_batch = self._original
        self._hook.remove()

    # --- the test's side --------------------------------------------------------------------------
    def release(self, n: int = 1) -> None:
        """Let `n` more held calls run."""
        for _ in range(n):
            self._permits.release()

    def open(self) -> None:
        """Let every held and later call run."""
        self._opened.set()
        self.release(len(self.calls) + 1)

    def wait_held(self, n: int) -> None:
        """Block until `n` calls have reached the gate (held or let through)."""
        self._wait(lambda: len(self.calls) >= n, f"{n} generate call(s) to reach the gate")

    def wait_done(self, n: int) -> None:
        """Block until `n` gated calls have returned."""
        self._wait(lambda: self._done >= n, f"{n} gated generate call(s) to finish")

    def _wait(self, ready, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(ready, timeout=WAIT_S):
                raise AssertionError(f"waited {WAIT_S:.0f} s for {what}; calls so far: {self.calls}")

    # --- the backend's side (the lane's generate thread) ------------------------------------------
    def _gated(self, group, use_prefix_cache: bool = True, preempt=None):
        if self.lane is not None and group[0].request.lane != self.lane:
            return self._original(group, use_prefix_cache, preempt)
        with self._changed:
            index = len(self.calls)
            self.calls.append([s.request.judge_task.prediction if s.request.judge_task else "<chat>"
                               for s in group])
            self.forwards.append(0)
            self._changed.notify_all()
        if not self._opened.is_set() and not self._permits.acquire(timeout=WAIT_S):
            raise RuntimeError("GenerationGate: no permit in time (the test never released this call)")
        self._running[threading.get_ident()] = index
        try:
            return self._original(group, use_prefix_cache, preempt)
        finally:
            del self._running[threading.get_ident()]
            with self._changed:
                self._done += 1
                self._changed.notify_all()

    def _count_forward(self, module, args) -> None:
        index = self._running.get(threading.get_ident())
        if index is not None:
            self.forwards[index] += 1


def wait_until(predicate, what: str, timeout: float = WAIT_S, poll_s: float = 0.02) -> None:
    """Poll `predicate` (a cheap check, e.g. a metrics counter) until it holds; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(poll_s)
