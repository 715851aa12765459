"""A deadline on every video read: the read runs in a worker thread that is abandoned if it does not return.

A video on a hung network mount (or any file whose `open`/`read` blocks) used to stop training, validation
or evaluation forever: the decoder sat in the kernel and nothing, not even SIGTERM, got the process out.
`read_with_deadline(fn, timeout_s, what)` runs `fn` in a daemon thread and waits at most `timeout_s`
seconds for it. A read that has not returned by then raises `VideoReadTimeout`, which callers treat like
any unreadable video (training skips and counts the row, validation reports its line, evaluation records
a video error); the stuck thread is left behind (a daemon: it never keeps the process alive) and its
late result, if any, is dropped.

Why threads: no reader offers a timeout (decord and PyAV block inside FFmpeg's `open`/`read`), a thread
cannot be killed, and a subprocess per read would copy every decoded frame back. Both readers release the
GIL while they wait, so the waiting thread and the signal handlers keep running.

Shutdown: `abandon_waits()` wakes every thread waiting on a read at once (it then raises
`VideoReadAbandoned`). The trainer's signal handler calls it, and it runs at interpreter exit before
non-daemon threads (a prefetch worker, a thread pool) are joined, so Ctrl-C or SIGTERM ends the process
within seconds whatever a reader is doing. A call made from inside a deadline-bounded read (e.g. the
header read inside a clip load) runs inline under the outer deadline.
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

import qwen_vl_utils as qvu

T = TypeVar("T")

_local = threading.local()
_waits: set[threading.Event] = set()
_lock = threading.Lock()
_abandoned = threading.Event()
_woken: set[threading.Event] = set()  # waits ended by abandon_waits, not by their read
_stuck = {"threads": 0}


class VideoReadTimeout(qvu.VideoReadError):
    """A video read did not return within its deadline (the file is on a hung mount, a FIFO, ...)."""


class VideoReadAbandoned(qvu.VideoReadError):
    """The process is shutting down: a read still waiting was given up."""


def stuck_reads() -> int:
    """Reader threads given up on that have not returned yet (they hold no lock and keep nothing alive)."""
    with _lock:
        return _stuck["threads"]


def abandon_waits(for_good: bool = False) -> None:
    """Wake every thread waiting on a video read now (it raises `VideoReadAbandoned`). Called on Ctrl-C /
    SIGTERM; at interpreter exit with `for_good`, after which every read fails at once."""
    with _lock:
        if for_good:
            _abandoned.set()
        for done in _waits:
            done.set()
            _woken.add(done)


def read_with_deadline(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    """`fn()` if it returns within `timeout_s` seconds, else `VideoReadTimeout` naming `what` (see the
    module docstring). Exceptions of `fn` propagate unchanged."""
    if getattr(_local, "inside", False):
        return fn()
    if _abandoned.is_set():
        raise VideoReadAbandoned(f"{what}: not read, the process is shutting down")
    box: dict = {}
    done = threading.Event()

    def run() -> None:
        _local.inside = True
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc
        finally:
            with _lock:
                box["finished"] = True
                if box.get("given_up"):
                    _stuck["threads"] -= 1
            done.set()

    with _lock:
        _waits.add(done)
    threading.Thread(target=run, name="versavid-video-read", daemon=True).start()
    try:
        done.wait(timeout_s)
    finally:
        with _lock:
            _waits.discard(done)
            woken = done in _woken
            _woken.discard(done)
            if not box.get("finished"):
                box["given_up"] = True
                _stuck["threads"] += 1
    if not box.get("finished"):
        if woken:
            raise VideoReadAbandoned(f"{what}: read given up, the process is shutting down")
        raise VideoReadTimeout(f"{what}: reading the video did not finish within {timeout_s:g} s "
                               "(--video_read_timeout_s); a hung mount or a file that blocks? Given up")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _at_exit() -> None:
    abandon_waits(for_good=True)


# Reason: threading's own exit hooks run before non-daemon threads are joined (atexit handlers run after),
# so a prefetch worker waiting on a stuck read is woken before the interpreter waits for it.
_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_at_exit)
