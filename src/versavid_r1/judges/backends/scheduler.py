"""Fair scheduling for the transformers backend's micro-batcher.

Items (one generation each) are queued per request (one `generate_many` call = one HTTP request).
`FairQueue.pop` fills a batch by taking one item from each waiting request in turn, so a request with
512 items and a request with one item share the next batch: the lone verdict waits for at most one
generate call, not for the whole large batch (a FIFO queue made it wait for all of it).

Round-robin alone cannot help a request that arrives while a batch is being generated: on a CPU a
generate call of 32 rows takes seconds, and the newcomer waited for all of it. A request queued while a
call runs is *urgent* (`put_request(urgent=True)`): the backend stops the running call at its next token
(its unfinished rows keep the tokens generated so far and go back to the front of their queues,
`requeue`), and the next batch takes urgent requests only (`pop`, `last_pop_urgent`). So a short verdict
waits for one token of a large batch, not for the batch; every call still advances each of its rows by
at least one token, so the large batch finishes too.

An item whose caller has gone (its future was cancelled: the client disconnected or timed out) is
dropped when it reaches the front of its queue and counted; `Slot.abandoned` is a thread-safe flag
the generate thread reads to stop a row mid-generation (versavid_r1.judges.backends.stopping).

Why by hand: asyncio.Queue is FIFO, and the serving engines with fair batching (vLLM, TGI) are separate
GPU stacks; the round-robin is a few lines over `collections.deque`.
"""
from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Slot:
    """One queued generation: its request, prompt ids and the future its caller awaits."""

    request: Any
    input_ids: list[int]
    future: asyncio.Future
    abandoned: threading.Event = field(default_factory=threading.Event)
    generated: list[int] = field(default_factory=list)  # tokens generated so far (a preempted row resumes)
    rid: int = 0  # the request it belongs to (set by FairQueue.put_request)

    def __post_init__(self) -> None:
        # Runs on the event loop when the caller cancels (or the result is set); the flag is read by
        # the generate thread.
        self.future.add_done_callback(lambda f: self.abandoned.set() if f.cancelled() else None)

    @property
    def gone(self) -> bool:
        return self.future.done()

    @property
    def tokens(self) -> list[int]:
        """The prompt and what was generated so far: what the next generate call continues from."""
        return self.input_ids + self.generated


class FairQueue:
    """Per-request queues served round-robin; `wait()` blocks until an item is queued."""

    def __init__(self) -> None:
        self._queues: "OrderedDict[int, deque[Slot]]" = OrderedDict()
        self._ids = 0
        self._size = 0
        self._nonempty = asyncio.Event()
        self._urgent: set[int] = set()  # requests that came while a generate call was running
        self.last_pop_urgent = False    # the last pop served urgent requests only
        self.dropped = 0            # items whose caller had gone before they were generated

    def __len__(self) -> int:
        return self._size

    @property
    def requests(self) -> int:
        return len(self._queues)

    def put_request(self, slots: list[Slot], urgent: bool = False) -> None:
        """Queue the items of one request behind the requests already waiting; `urgent`: it came while a
        generate call was running, and the next batch is for urgent requests only."""
        if not slots:
            return
        self._ids += 1
        for slot in slots:
            slot.rid = self._ids
        self._queues[self._ids] = deque(slots)
        if urgent:
            self._urgent.add(self._ids)
        self._size += len(slots)
        self._nonempty.set()

    def requeue(self, slots: list[Slot]) -> None:
        """Put preempted items back at the front of their requests' queues (in their order)."""
        for slot in reversed(slots):
            queue = self._queues.get(slot.rid)
            if queue is None:
                queue = self._queues[slot.rid] = deque()
            queue.appendleft(slot)
            self._size += 1
        if slots:
            self._nonempty.set()

    async def wait(self) -> None:
        while not self._size:
            self._nonempty.clear()
            await self._nonempty.wait()

    def pop(self, n: int) -> list[Slot]:
        """Up to `n` live items, one per request in turn (then round again); urgent requests only while any
        has items left (`last_pop_urgent` says which)."""
        self._urgent &= set(self._queues)
        self.last_pop_urgent = bool(self._urgent)
        out: list[Slot] = []
        while len(out) < n and self._queues:
            rid = next((r for r in self._queues if r in self._urgent), None) if self._urgent else None
            if rid is None and self.last_pop_urgent:
                break
            rid = next(iter(self._queues)) if rid is None else rid
            queue = self._queues[rid]
            slot = queue.popleft()
            self._size -= 1
            if queue:
                self._queues.move_to_end(rid)
            else:
                del self._queues[rid]
                self._urgent.discard(rid)
            if slot.gone:
                self.dropped += 1
                continue
            out.append(slot)
        return out

    def drain(self) -> list[Slot]:
        """Every queued item (on shutdown)."""
        out = [s for q in self._queues.values() for s in q]
        self._queues.clear()
        self._urgent.clear()
        self._size = 0
        return out
