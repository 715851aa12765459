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
@pytest.mark.slow
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
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(1200)]
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


# --- fairness -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> str:
    from versavid_r1.tiny_model import build_tiny_causal_lm

    return str(build_tiny_causal_lm(tmp_path_factory.getbasetemp() / "tiny-judge-lm", seed=0))


def test_a_short_verdict_is_not_held_behind_a_32_item_batch(tiny_lm):
    """The 32-item request's generate call is held at its first forward until the lone request is queued
    (an event, not a timing); the lone request must then finish while the batch is still unfinished, and the
    batch's greedy replies must equal those of an undisturbed run."""
    from versavid_r1.judges.backends.base import GenRequest
    from versavid_r1.judges.backends.transformers_backend import TransformersBackend
    from versavid_r1.judges.settings import QwenJudgeSettings

    settings = QwenJudgeSettings(model=tiny_lm, backend="transformers", device="cpu", max_batch_size=32,
                                 max_wait_ms=0, prefix_cache=False, cpu_threads=1)

    def ask(i: int, tokens: int = 24) -> GenRequest:
        return GenRequest(messages=[{"role": "user", "content": f"Is loaf {i} cut? Answer at length."}],
                          max_new_tokens=tokens)

    async def go():
        backend = TransformersBackend(settings)
        await backend.start()
        try:
            undisturbed = await backend.generate_many([ask(i) for i in range(32)])
            held, entered = threading.Event(), threading.Event()

            def hold_first_forward(module, args, kwargs):
                if not held.is_set():
                    entered.set()
                    held.wait(60)

            handle = backend.model.register_forward_pre_hook(hold_first_forward, with_kwargs=True)
            loop = asyncio.get_running_loop()
            big = asyncio.ensure_future(backend.generate_many([ask(i) for i in range(32)]))
            assert await loop.run_in_executor(None, entered.wait, 60), "the batch never started"
            lone = asyncio.ensure_future(backend.generate_many([ask(999, tokens=4)]))
            lane = backend._lanes["verdict"]
            while not lane.preempt.is_set():  # the lone request is queued
                await asyncio.sleep(0.01)
            held.set()
            done, _ = await asyncio.wait([big, lone], return_when=asyncio.FIRST_COMPLETED)
            assert lone in done and not big.done(), "the lone verdict waited for the whole batch"
            resumed = await big
            handle.remove()
            return undisturbed, resumed, backend.stats.extra.get("preempted", 0)
        finally:
            await backend.stop()

    undisturbed, resumed, preempted = asyncio.run(go())
    assert preempted == 32 and max(r.completion_tokens for r in undisturbed) > 4
    assert [r.text for r in resumed] == [r.text for r in undisturbed]
    assert [r.completion_tokens for r in resumed] == [r.completion_tokens for r in undisturbed]
