"""Waiting for a judge service started as a separate process to report ready on /health.

Used by run_qwen25vl_train.sh (`python -m versavid_r1.judges.wait URL --pid PID`) and by tests that
start the entry scripts: the wait ends early, with the log's tail, when the process dies.

    python -m versavid_r1.judges.wait http://127.0.0.1:5000 --pid 1234 --name "Qwen2.5 judge" --log judge.log
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import httpx

from versavid_r1.protocol import HEALTH_PATH


class ServiceNotReady(RuntimeError):
    """The service died or did not report ready in time; the message says which and where its log is."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _ready(url: str) -> bool:
    try:
        return bool(httpx.get(url.rstrip("/") + HEALTH_PATH, timeout=2).json().get("ready"))
    except (httpx.HTTPError, ValueError):
        return False


def _log_tail(log: Optional[str], chars: int = 2000) -> str:
    if not log or not Path(log).is_file():
        return ""
    return "\n--- last lines of " + log + " ---\n" + Path(log).read_text(errors="replace")[-chars:]


def wait_until_ready(
    url: str,
    timeout: float = 180.0,
    alive: Optional[Callable[[], bool]] = None,
    name: str = "judge service",
    log: Optional[str] = None,
    poll_s: float = 0.2,
) -> float:
    """Poll `url`/health until it reports ready; returns the seconds waited.

    `alive` (e.g. `lambda: proc.poll() is None`) stops the wait as soon as the process has exited.
    """
    started = time.monotonic()
    while True:
        if alive is not None and not alive():
            raise ServiceNotReady(f"the {name} exited during start-up" + _log_tail(log))
        if _ready(url):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise ServiceNotReady(f"the {name} did not become ready at {url} in {timeout:g} s" + _log_tail(log))
        time.sleep(poll_s)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Wait until a judge service reports ready on /health.")
    p.add_argument("url")
    p.add_argument("--pid", type=int, default=None, help="stop waiting when this process exits")
    p.add_argument("--timeout", type=float, default=float(os.environ.get("JUDGE_START_TIMEOUT", "180")))
    p.add_argument("--name", default="judge service")
    p.add_argument("--log", default=None, help="the service's log file, shown when it fails")
    args = p.parse_args(argv)
    alive = (lambda: _pid_alive(args.pid)) if args.pid else None
    try:
        waited = wait_until_ready(args.url, args.timeout, alive, args.name, args.log)
    except ServiceNotReady as err:
        print(f"[run] {err}", file=sys.stderr)
        return 1
    print(f"[run] {args.name} ready at {args.url} ({waited:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
