"""The judge services bound the work and the connections a client can hold (issue 15, part 2):
work of a client that has gone is cancelled, a large batch and long chat requests do not hold up a
short verdict, slow or idle connections are closed, logs are rate-limited, bad options fail at once.
Real services on 127.0.0.1 with the transformers backend on the offline tiny causal LM."""
from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from versavid_r1.judges import (
    CaptionJudgeSettings, QwenJudgeSettings, ServiceLimits, create_caption_judge_app, create_qwen_judge_app,
)
from versavid_r1.judges.connections import RateLimitFilter
from versavid_r1.judges.server import BackgroundServer
from versavid_r1.protocol import PREDICT_BATCH_PATH, PREDICT_PATH
from versavid_r1.rewards import JudgeClient, JudgeError, JudgeItem

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def slow_judge(tmp_path_factory):
    """Verdicts of 48 tokens in batches of 4: a few hundred ms per generate call on a CPU."""
    from versavid_r1.tiny_model import build_tiny_causal_lm

    model = str(build_tiny_causal_lm(tmp_path_factory.getbasetemp() / "tiny-judge-lm", seed=0))
    settings = QwenJudgeSettings(model=model, backend="transformers", device="cpu", max_batch_size=4,
                                 max_wait_ms=5, max_new_tokens=48, chat_max_tokens=1000, decoy_check=False,
                                 prefix_cache=False, cpu_threads=1)
    with BackgroundServer(create_qwen_judge_app(settings)) as srv:
        yield srv


def metrics(srv) -> dict:
    return httpx.get(srv.url + "/metrics").json()


def dei(i: int) -> dict:
    return {"content": f"<answer>The man slices loaf number {i}.</answer>", "sol": "<answer>A man cuts bread.</answer>",
            "problem_type": "DarkEventInfer"}


def wait_idle(srv, timeout: float = 10.0) -> float:
    t0 = time.monotonic()
    while metrics(srv)["queue_depth"] and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    return time.monotonic() - t0


def test_work_of_a_client_that_gave_up_is_cancelled(slow_judge):
    """Issue 15: 64 items, 2 s timeout, 2 retries made 192 generations and kept the judge busy 80 s.
    The same shape with a 1 s deadline: without cancellation all 192 would be generated (48 generate
    calls of 4); with it, only the calls that fit in each deadline plus the one in flight (whose rows
    stop early), and the judge is idle right after the client gives up."""
    wait_idle(slow_judge)
    before = metrics(slow_judge)
    client = JudgeClient({"qwen25": slow_judge.url}, timeout_s=1.0, retries=2, backoff_s=0.01, max_batch_size=64)
    items = [JudgeItem("DarkEventInfer", f"The man slices loaf number {i}.", "<answer>A man cuts bread.</answer>")
             for i in range(64)]

    async def go():
        async with client:
            return await client.score(items)

    with pytest.raises(JudgeError, match="timed out"):
        asyncio.run(go())
    idle_after = wait_idle(slow_judge)
    after = metrics(slow_judge)
    generated = after["batched_requests"] - before["batched_requests"]
    calls = after["generate_calls"] - before["generate_calls"]
    per_call = (after["generate_seconds"] - before["generate_seconds"]) / max(1, calls)
    bound = 3 * 4 * (math.ceil(1.0 / per_call) + 1)      # 3 attempts x (calls in the deadline + 1 in flight)
    print(f"generated {generated} of 192 items sent ({calls} calls of ~{per_call:.2f} s, bound {bound}), "
          f"cancelled {after['cancelled'] - before['cancelled']}, idle {idle_after:.2f} s after")
    # Without cancellation all 192 are generated; the bound follows the measured call time, the cap of half
    # keeps a slow machine (long calls, a large bound) from excusing work that was not cancelled.
    assert generated <= min(bound, 96), f"{generated} generations: the work was not cancelled"
    assert after["cancelled"] - before["cancelled"] >= 192 - generated
    assert idle_after < 1.5 and after["cancelled_requests"] - before.get("cancelled_requests", 0) == 3


def test_a_short_verdict_does_not_wait_behind_a_large_batch(slow_judge):
    """The micro-batcher serves requests round-robin: a lone verdict gets into the next generate call
    (a FIFO queue made it wait for the whole batch of 40 items, 10 generate calls)."""
    wait_idle(slow_judge)

    async def go():
        async with httpx.AsyncClient(base_url=slow_judge.url, timeout=120) as c:
            big = asyncio.ensure_future(c.post(PREDICT_BATCH_PATH, json={"items": [dei(i) for i in range(40)]}))
            await asyncio.sleep(0.3)           # the batch is being generated
            t0 = time.perf_counter()
            single = await c.post(PREDICT_PATH, json=dei(999))
            single_s = time.perf_counter() - t0
            big_done = big.done()
            big.cancel()                       # hang up: the rest of the batch is dropped
            return single, single_s, big_done

    single, single_s, big_done = asyncio.run(go())
    assert single.status_code == 200, single.text
    assert not big_done, "the large batch finished first: the verdict waited behind it"
    per_call = metrics(slow_judge)["generate_seconds"] / max(1, metrics(slow_judge)["generate_calls"])
    print(f"lone verdict {single_s:.2f} s while a 40-item batch ran; one generate call ~{per_call:.2f} s")
    assert single_s < 4 * per_call + 0.5
    assert wait_idle(slow_judge) < 1.5


def test_a_verdict_does_not_wait_behind_a_long_chat_generation(slow_judge):
    """Chat requests (the caption judge's long JSON replies) run in their own lane."""
    wait_idle(slow_judge)
    alone = httpx.post(slow_judge.url + PREDICT_PATH, json=dei(7), timeout=60).json()

    async def go():
        async with httpx.AsyncClient(base_url=slow_judge.url, timeout=120) as c:
            chat = asyncio.ensure_future(c.post("/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "Describe the video in detail."}], "max_tokens": 1000}))
            await asyncio.sleep(0.3)
            t0 = time.perf_counter()
            verdict = await c.post(PREDICT_PATH, json=dei(7))
            verdict_s = time.perf_counter() - t0
            chat_done = chat.done()
            chat_reply = await chat
            return verdict, verdict_s, chat_done, chat_reply

    verdict, verdict_s, chat_done, chat_reply = asyncio.run(go())
    assert verdict.status_code == 200 and chat_reply.status_code == 200
    assert not chat_done, f"the verdict ({verdict_s:.2f} s) waited for the 1000-token chat generation"
    chat_tokens = chat_reply.json()["usage"]["completion_tokens"]
    print(f"verdict {verdict_s:.2f} s beside a chat of {chat_tokens} tokens")
    assert chat_tokens > 500  # long enough that a verdict queued behind it would be late by seconds
    assert verdict.json()["raw"] == alone["raw"]   # the same greedy reply as when run alone


# --- connections ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def guarded():
    """A service with a 0.5 s request deadline and room for 4 connections (no model calls are made)."""
    settings = CaptionJudgeSettings(base_url="http://127.0.0.1:9/v1", limits=ServiceLimits(
        request_read_timeout_s=0.5, limit_concurrency=4))
    os.environ.setdefault("OPENAI_API_KEY", "unused")
    with BackgroundServer(create_caption_judge_app(settings)) as srv:
        yield srv


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True if the server closes `sock` within `seconds` (reads until EOF)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return True


@pytest.mark.parametrize("send", [
    b"",                                                                     # connects, sends nothing
    b"GET /health HTTP/1.1\r\nHost: x\r\n",                                  # headers never end
    b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"con",
])
def test_half_open_and_slow_requests_are_closed(guarded, send):
    port = guarded.port
    with socket.create_connection(("127.0.0.1", port)) as sock:
        t0 = time.monotonic()
        if send:
            sock.sendall(send)
        assert _closed_within(sock, 3.0), "the server kept a half-open connection"
        assert time.monotonic() - t0 < 0.5 + 1.0
    assert httpx.get(guarded.url + "/health").status_code == 200     # the service itself is fine


def test_connection_limit_answers_503(guarded):
    socks = [socket.create_connection(("127.0.0.1", guarded.port)) for _ in range(4)]
    try:
        time.sleep(0.05)
        r = httpx.get(guarded.url + "/health")
        assert r.status_code == 503
    finally:
        for s in socks:
            s.close()
    time.sleep(0.1)
    assert httpx.get(guarded.url + "/health").status_code == 200


def test_error_logs_are_rate_limited():
    now = [0.0]
    flt = RateLimitFilter(per_minute=5, clock=lambda: now[0])
    logger = logging.getLogger("versavid_r1.test_rate_limit")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    handler.addFilter(flt)
    logger.addHandler(handler)
    try:
        for i in range(1000):
            logger.error("model endpoint failed: %s", i)
        logger.info("an info line is never limited")
        now[0] = 61.0
        logger.error("model endpoint failed: %s", "again")
    finally:
        logger.removeHandler(handler)
    assert len(seen) == 5 + 1 + 1
    assert seen[-1] == "model endpoint failed: again (995 similar message(s) suppressed in the last minute)"


# --- options are checked before anything loads ----------------------------------------------------------------
@pytest.mark.parametrize("script,argv,needle", [
    ("qwen25_judge_service.py", ["--max-batch-size", "0"], "max_batch_size must be >= 1"),
    ("qwen25_judge_service.py", ["--device", "gpu"], "--device must be"),
    ("qwen25_judge_service.py", ["--model", "/no/such/model", "--port", "1"], "is not a directory"),
    ("qwen25_judge_service.py", ["--backend", "openai", "--openai-base-url", "localhost:8000"], "--openai-base-url"),
    ("qwen25_judge_service.py", ["--request-read-timeout-s", "0"], "--request-read-timeout-s"),
    ("gpt35_judge_service.py", ["--azure-endpoint", "https://x.openai.azure.com"], "--api-version"),
    ("gpt35_judge_service.py", ["--port", "70000"], "--port"),
])
def test_bad_options_exit_2_within_a_second(script, argv, needle):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "src" / script), *argv],
                         capture_output=True, text=True, env=env, timeout=60)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 2, out.stderr[-2000:]
    assert needle in out.stderr
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "transformers", "fastapi", "uvicorn", "openai", "pydantic"}, imported
    assert elapsed < 1.0, f"{elapsed:.2f} s"


# --- the launcher's start-up wait confirms the service it started ---------------------------------------------
def test_the_start_up_wait_refuses_a_stale_service_on_the_port(tmp_path, monkeypatch):
    """Two services on one port: a stale one (in this process) answers /health while the one the launcher
    just started (the real entry script) cannot bind. `python -m versavid_r1.judges.wait --pid` refuses it
    at once instead of reporting the stale judge as ready. The started script, bound on every interface
    without an API key, warns about it first."""
    from versavid_r1.judges.wait import ServiceNotReady, wait_until_ready

    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    monkeypatch.delenv("VERSAVID_JUDGE_API_KEY", raising=False)
    settings = CaptionJudgeSettings(base_url="http://127.0.0.1:9/v1", instance_token="stale-run")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    with BackgroundServer(create_caption_judge_app(settings)) as stale:
        log = tmp_path / "caption_judge.log"
        with open(log, "w") as fh:
            started = subprocess.Popen(
                [sys.executable, str(ROOT / "src" / "gpt35_judge_service.py"), "--host", "0.0.0.0", "--port",
                 str(stale.port), "--base-url", "http://127.0.0.1:9/v1", "--instance-token", "new-run"],
                stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            out = subprocess.run([sys.executable, "-m", "versavid_r1.judges.wait", stale.url, "--pid", str(started.pid),
                                  "--name", "caption judge", "--log", str(log), "--timeout", "60"],
                                 capture_output=True, text=True, env=env, timeout=90)
            assert out.returncode == 1, out.stdout + out.stderr
            assert "another service answers" in out.stderr and "not the caption judge that was started" in out.stderr
            assert f"not the started process {started.pid}" in out.stderr and "stale judge" in out.stderr
            started.wait(timeout=60)
        finally:
            if started.poll() is None:
                started.kill()
        text = log.read_text()
        assert "without an API key" in text and "0.0.0.0" in text, text[-2000:]
        assert "address already in use" in text.lower(), text[-2000:]
        # The right pid (this process runs the stale one) or instance token passes; a wrong token does not.
        assert wait_until_ready(stale.url, timeout=10, pid=os.getpid(), instance="stale-run") < 10
        with pytest.raises(ServiceNotReady, match="reports instance 'stale-run', not 'new-run'"):
            wait_until_ready(stale.url, timeout=10, instance="new-run")
