"""Running a judge app with uvicorn: in the foreground (entry scripts) or in a background thread
(tests, the load-test script, the demo run).

Both read the connection bounds from the app's settings (`app.state.settings`, set by the app
factories; versavid_r1.judges.connections): uvicorn's connection limit, a deadline on receiving each
request and the keep-alive timeout. `run_service` (the entry scripts) also rate-limits the service's
warning and error logs and warns when a service without an API key listens beyond this machine.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import sys
import threading
import time
from typing import Callable, Optional, Sequence

from .settings import ServiceLimits

log = logging.getLogger("versavid_r1.judges.server")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def parse_or_exit(parse: Callable[[Optional[Sequence[str]]], object], argv: Optional[Sequence[str]],
                  prog: str = "judge service"):
    """Settings from the command line; an invalid combination exits with status 2 and the message,
    before anything is imported or loaded (argparse's own errors already do)."""
    try:
        settings = parse(argv)
        if hasattr(settings, "preflight"):
            settings.preflight()
        return settings
    except ValueError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def verify_or_exit(settings, prog: str = "caption judge") -> bool:
    """One real call to the caption judge's model endpoint (versavid_r1.judges.upstream): True when it
    worked, False when the endpoint does not answer yet (the service then starts not ready); a refused key
    or unknown model exits with status 2 and one line."""
    if settings.backend != "openai":
        return True
    from .upstream import UpstreamRejected, verify_upstream

    try:
        why = verify_upstream(settings)
    except UpstreamRejected as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if why is not None:
        logging.getLogger("versavid_r1.judges.caption").warning(
            "the model endpoint does not answer yet (%s): /health says not ready until a call succeeds", why)
    return why is None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(settings) -> Optional[str]:
    """The warning for a service that listens beyond this machine without an API key (else None)."""
    if is_loopback(settings.host) or settings.api_key:
        return None
    return (f"listening on {settings.host}:{settings.port} without an API key: anyone who can reach this "
            f"address can use the judge. Set VERSAVID_JUDGE_API_KEY (clients then send it), or bind "
            f"--host 127.0.0.1")


def uvicorn_config(app, host: str, port: int, log_level: str, **extra):
    """A uvicorn.Config with the bounds of the app's settings (defaults for apps without them)."""
    import uvicorn

    from .connections import connection_limits, guarded_h11

    settings = getattr(app.state, "settings", None)
    limits = settings.limits if settings is not None else ServiceLimits()
    limit, backlog = connection_limits(limits.limit_concurrency)
    return uvicorn.Config(app, host=host, port=port, log_level=log_level,
                          http=guarded_h11(limits.request_read_timeout_s),
                          limit_concurrency=limit, backlog=backlog,
                          timeout_keep_alive=max(1, round(limits.keep_alive_s)), **extra)


def run_service(settings, create_app) -> None:
    """The body of both entry scripts: logging at the settings' level, then the app in the foreground."""
    import uvicorn

    from .connections import install_log_rate_limit

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    config = uvicorn_config(create_app(settings), settings.host, settings.port, settings.log_level)
    install_log_rate_limit(settings.limits.error_log_per_minute)   # after uvicorn set up its loggers
    warning = exposure_warning(settings)
    if warning:
        log.warning(warning)
    uvicorn.Server(config).run()


class BackgroundServer:
    """uvicorn serving `app` in a daemon thread; a context manager that waits until the app's
    lifespan has run (model loaded) and stops it on exit.

        with BackgroundServer(app) as srv:
            httpx.get(srv.url + "/health")
    """

    def __init__(self, app, host: str = "127.0.0.1", port: Optional[int] = None,
                 log_level: str = "warning", startup_timeout: float = 120.0):
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        self.config = uvicorn_config(app, host, self.port, log_level, lifespan="on")
        self.server = uvicorn.Server(self.config)
        self.startup_timeout = startup_timeout
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:  # surfaced by start()
            self._error = exc

    def start(self) -> "BackgroundServer":
        self._thread = threading.Thread(target=self._run, name=f"judge-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"server on {self.url} failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"server on {self.url} did not start in {self.startup_timeout} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
