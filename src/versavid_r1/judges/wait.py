"""Waiting for a judge service started as a separate process to report ready on /health.

Used by run_qwen25vl_train.sh (`python -m versavid_r1.judges.wait URL --pid PID`) and by tests that
start the entry scripts: the wait ends early, with the log's tail, when the process dies.

It also confirms that the service answering is the one that was started: with `--pid`, the pid that
/health reports must be that process or one of its children (a launcher may start the service
through a wrapper); with `--instance`, /health must report that `--instance-token`. A stale service
left on the port by an earlier run is refused at once with a message saying so, instead of being
trained against while the new one fails to bind.

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


def pid_alive(pid: int) -> bool:
    """The process exists (signal 0 reaches it)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _health(url: str) -> Optional[dict]:
    """The /health body, or None while nothing (valid) answers."""
    try:
        body = httpx.get(url.rstrip("/") + HEALTH_PATH, timeout=2, trust_env=False).json()
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _descends_from(pid: int, ancestor: int) -> bool:
    """True if `pid` is `ancestor` or one of its descendants (Linux /proc; elsewhere only equality)."""
    for _ in range(64):
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])   # the field after the command name: ppid
        if pid <= 1:
            return False
    return False


def _stranger(health: dict, pid: Optional[int], instance: Optional[str]) -> Optional[str]:
    """Why the answering service is not the one started (None: it is, or nothing to check)."""
    if instance is not None and health.get("instance") != instance:
        return f"it reports instance {health.get('instance')!r}, not {instance!r}"
    if pid is not None:
        reported = health.get("pid")
        if not isinstance(reported, int):
            return "it does not report its pid (an older version of the service?)"
        if not _descends_from(reported, pid):
            return f"it is process {reported}, not the started process {pid} or one of its children"
    return None


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
    pid: Optional[int] = None,
    instance: Optional[str] = None,
) -> float:
    """Poll `url`/health until the started service reports ready; returns the seconds waited.

    `alive` (e.g. `lambda: proc.poll() is None`) stops the wait as soon as the process has exited.
    `pid` / `instance`: the service answering must be that process (or a child) / report that token;
    another one is refused at once (see the module docstring).
    """
    started = time.monotonic()
    while True:
        health = _health(url)
        if health is not None:
            why = _stranger(health, pid, instance)
            if why is not None:
                raise ServiceNotReady(
                    f"another service answers at {url}, not the {name} that was started: {why}. A stale "
                    f"judge from an earlier run is probably still listening on that port: stop it (or "
                    f"choose another port) and start again" + _log_tail(log))
            if health.get("ready"):
                return time.monotonic() - started
        if alive is not None and not alive():
            raise ServiceNotReady(f"the {name} exited during start-up" + _log_tail(log))
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
    p.add_argument("--instance", default=None, help="the --instance-token the service was started with")
    p.add_argument("--no-pid-check", action="store_true",
                   help="do not require /health's pid to be --pid or a child (e.g. a service in a container)")
    args = p.parse_args(argv)
    alive = (lambda: pid_alive(args.pid)) if args.pid else None
    check_pid = None if args.no_pid_check else args.pid
    try:
        waited = wait_until_ready(args.url, args.timeout, alive, args.name, args.log,
                                  pid=check_pid, instance=args.instance)
    except ServiceNotReady as err:
        print(f"[run] {err}", file=sys.stderr)
        return 1
    print(f"[run] {args.name} ready at {args.url} ({waited:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
