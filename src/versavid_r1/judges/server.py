"""Running a judge app with uvicorn: in the foreground (entry scripts) or in a background thread
(tests, the load-test script, the demo run)."""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Optional


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve(app, host: str, port: int, log_level: str = "info") -> None:
    """Serve `app` until interrupted (the entry scripts)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=30)


def run_service(settings, create_app) -> None:
    """The body of both entry scripts: logging at the settings' level, then the app in the foreground."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s: %(message)s")
    serve(create_app(settings), settings.host, settings.port, settings.log_level)


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
        self.config = uvicorn.Config(app, host=host, port=self.port, log_level=log_level,
                                     lifespan="on", timeout_keep_alive=30)
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
