"""Cancel a request's work when its client goes away.

Starlette does not cancel an endpoint when the client disconnects: without this, a client that timed
out left its items queued and generated (64 items with a 2 s timeout and 2 retries made 192
generations and kept the judge busy 80 s after the client had given up). `cancel_on_disconnect` runs
the work as a task next to a watcher that waits for the ASGI `http.disconnect` message (uvicorn
sends it when the connection closes); whichever ends first cancels the other. Cancelling the work
cancels the backend's futures, so queued items are dropped and running rows stop (see the
backends). The client never sees the answer; the service logs nothing more than a count.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

from fastapi import HTTPException, Request

T = TypeVar("T")
CLIENT_CLOSED = 499   # nginx's "client closed request": the response goes nowhere


async def _until_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def cancel_on_disconnect(request: Request, work: Awaitable[T], counter: dict | None = None) -> T:
    """Await `work`; if the client disconnects first, cancel it and raise HTTPException(499).
    `counter["cancelled_requests"]` (if given) counts those."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.wait({task})   # let it unwind (its outcome is dropped: nobody waits for it)
    if not task.cancelled():
        task.exception()          # mark a late error as retrieved
    if counter is not None:
        counter["cancelled_requests"] = counter.get("cancelled_requests", 0) + 1
    raise HTTPException(CLIENT_CLOSED, detail="the client closed the request; its work was cancelled")
