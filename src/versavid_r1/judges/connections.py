"""Bounds on the judge services' connections, and their logs: what uvicorn does not bound by itself.

* **Read deadline.** uvicorn times out idle keep-alive connections but not a client that connects and
  sends nothing, or sends its headers or body a byte at a time (its keep-alive timer is cancelled by
  the first byte of a request). `guarded_h11(read_timeout_s)` is uvicorn's h11 protocol with one
  more timer: from connecting, or from the first byte of a request, the whole request (headers and
  body) must arrive within `read_timeout_s`, else the connection is closed. The timer is off while
  the service works on a request and while uvicorn's keep-alive timer watches an idle connection.
* **Connection limit.** uvicorn's `limit_concurrency` (open connections plus requests in progress)
  answers 503 only to a request, and only on a connection it has already accepted: 20,000 idle
  connections used up the process's file descriptors, `accept` failed, and every client timed out. Here
  a connection beyond the limit is answered 503 as soon as it is accepted and closed (after the client
  has read the 503, at most `REFUSED_LINGER_S`, while few are lingering; at once during a flood), and
  `connection_limits` keeps the limit plus the listen backlog (how many connections the event loop
  accepts in one go) below the process's descriptor limit, raised to its hard limit first. So accepting
  never fails for want of descriptors and every client gets an answer.
* **Log flood.** `RateLimitFilter` lets at most `per_minute` records of one kind (logger, level,
  message template) through per minute, counts the rest and reports the count with the next one
  let through, so a client hammering a failing path cannot fill the disk with tracebacks.

Why by hand: uvicorn has no header/body read timeout, and the standard library has no rate-limited
logging filter.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("versavid_r1.judges.connections")
_RECEIVING = (h11.IDLE, h11.SEND_BODY)
REFUSED_LINGER_S = 1.0  # how long a refused connection may take to read its 503
REFUSED_LINGER_MAX = 16  # refused connections allowed to linger at once; beyond, they are closed at once
FD_RESERVE = 64  # descriptors kept for everything but client connections (model files, logs, lingering refusals)
MAX_BACKLOG = 2048  # uvicorn's default listen backlog
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: 42\r\nconnection: close\r\n\r\nservice at its connection limit, retry later")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline on receiving each request (module docstring)."""

    read_timeout_s: float = 30.0
    lingering: set = set()  # refused connections waiting for their client to read the 503 (one event loop)

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._read_timer = None
        self._refused = self.limit_concurrency is not None and len(self.connections) > self.limit_concurrency
        if self._refused:  # beyond the limit: 503 now, without waiting for (or reading) a request
            self._refuse(transport)
            return
        self._arm()   # a connection that never sends a request is closed too

    def _refuse(self, transport) -> None:
        log.warning("refused a connection from %s: %d connections open, the limit is %d",
                    self.client[0] if self.client else "?", len(self.connections) - 1, self.limit_concurrency)
        transport.write(_REFUSAL)
        lingering = GuardedH11Protocol.lingering
        if len(lingering) >= REFUSED_LINGER_MAX or not transport.can_write_eof():
            transport.close()  # a flood: the descriptor matters more than a graceful close
            return
        transport.write_eof()  # the client reads the 503 and closes; we close on its end-of-file
        lingering.add(self)
        self._read_timer = self.loop.call_later(REFUSED_LINGER_S, transport.close)

    def eof_received(self):
        if self._refused:
            return False  # the client has read the 503 and closed: close our side
        return super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # its request is not served (the 503 is on its way)
        super().data_received(data)
        if self.conn.their_state in _RECEIVING and not self.transport.is_closing():
            self._arm()
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm()   # idle between requests: uvicorn's keep-alive timer applies

    def connection_lost(self, exc) -> None:
        self._disarm()
        GuardedH11Protocol.lingering.discard(self)
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm(self) -> None:
        if getattr(self, "_read_timer", None) is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.conn.their_state in _RECEIVING and not self.transport.is_closing():
            log.warning("closed a connection from %s that did not send a whole request within %g s",
                        self.client[0] if self.client else "?", self.read_timeout_s)
            self.transport.close()


def connection_limits(wanted: int) -> tuple[int, int]:
    """(connection limit, listen backlog) that fit the process's descriptors: after raising the soft
    descriptor limit to the hard one, `wanted` is lowered (with a warning) to leave `FD_RESERVE` and a
    backlog of at least 16, and the backlog takes half of what is left (at most uvicorn's 2048)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard and soft != resource.RLIM_INFINITY:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    except (ImportError, ValueError, OSError):
        return wanted, MAX_BACKLOG
    if soft == resource.RLIM_INFINITY:
        return wanted, MAX_BACKLOG
    limit = min(wanted, max(1, soft - FD_RESERVE - 32))
    if limit < wanted:
        log.warning("--limit-concurrency %d lowered to %d: the process may open only %d files", wanted, limit, soft)
    # Half of what is left: the descriptors of one batch of refused connections are freed only after the
    # event loop has accepted the next batch.
    return limit, max(16, min(MAX_BACKLOG, (soft - FD_RESERVE - limit) // 2))


def guarded_h11(read_timeout_s: float) -> type:
    """The protocol class for uvicorn's `http=` with this read deadline."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"read_timeout_s": float(read_timeout_s)})


class RateLimitFilter(logging.Filter):
    """At most `per_minute` WARNING+ records per (logger, level, message template) and minute."""

    def __init__(self, per_minute: int = 20, clock=time.monotonic) -> None:
        super().__init__()
        self.per_minute = int(per_minute)
        self.clock = clock
        self._windows: dict[tuple, list] = {}   # key -> [window start, passed, suppressed]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window[0] >= 60.0:
                suppressed = window[2] if window else 0
                window = self._windows[key] = [now, 0, 0]
                if suppressed:
                    record.msg = f"{record.msg} ({suppressed} similar message(s) suppressed in the last minute)"
            if window[1] >= self.per_minute:
                window[2] += 1
                return False
            window[1] += 1
            return True


def install_log_rate_limit(per_minute: int, loggers: tuple[Optional[str], ...] = (
        None, "uvicorn", "uvicorn.error", "uvicorn.access")) -> RateLimitFilter:
    """Attach one `RateLimitFilter` to every handler of these loggers (None: the root logger)."""
    flt = RateLimitFilter(per_minute)
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(flt)
    return flt
