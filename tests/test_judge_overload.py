"""A judge under load stays fair and reachable: a short verdict is not held behind a large batch (the
transformers backend preempts the running generate call), and a flood of idle connections gets 503 at once
instead of leaving every client to time out."""
from __future__ import annotations

import asyncio
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from versavid_r1.judges.server import free_port
from versavid_r1.judges.wait import wait_until_ready

ROOT = Path(__file__).resolve().parents[1]


# --- connections ------------------------------------------------------------------------------------------
def test_idle_connections_beyond_the_descriptor_limit_get_503_not_a_timeout():
    """The service may open 1,024 files (a common default); 1,200 idle connections used them all up, `accept`
    failed and /health timed out. Now it holds at most its limit (512) and refuses the rest with 503 at once,
    accepting no more at a time than its descriptors allow."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}

    def few_descriptors():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    proc = subprocess.Popen([sys.executable, str(ROOT / "src/qwen25_judge_service.py"), "--backend", "lexical",
                             "--model", "lexical", "--port", str(port), "--log-level", "error"],
                            env=env, preexec_fn=few_descriptors, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socks = []
    try:
        wait_until_ready(url, timeout=120, alive=lambda: proc.poll() is None)
        t_c = time.monotonic(); socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(1200)]
        r = httpx.get(url + "/health", timeout=10)  # a timeout here is the failure
        assert r.status_code == 503 and "connection limit" in r.text
        for s in socks:
            s.close()
        socks = []
        deadline = time.monotonic() + 30
        while httpx.get(url + "/health", timeout=10).status_code != 200:  # the refused ones are gone
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
