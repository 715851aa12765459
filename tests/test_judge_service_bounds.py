"""The judge services bound the work and the connections a client can hold (issue 15, part 2):
work of a client that has gone is cancelled, a large batch and long chat requests do not hold up a
short verdict, slow or idle connections are closed, logs are rate-limited, bad options fail at once.
Real services on 127.0.0.1 with the transformers backend on the offline tiny causal LM."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from judge_gate import WAIT_S, GenerationGate, wait_until
from versavid_r1.judges import (
    CaptionJudgeSettings, QwenJudgeSettings, ServiceLimits, create_caption_judge_app, create_qwen_judge_app,
)
from versavid_r1.judges.backends.base import CHAT_LANE
from versavid_r1.judges.connections import RateLimitFilter
from versavid_r1.judges.server import BackgroundServer
from versavid_r1.protocol import PREDICT_BATCH_PATH, PREDICT_PATH
from versavid_r1.rewards import JudgeClient, JudgeError, JudgeItem

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def slow_judge(tmp_path_factory):
    """The transformers backend on the tiny causal LM: verdicts of up to 48 tokens in batches of 4. The tests
    hold its generate calls with `GenerationGate` (tests/judge_gate.py), so nothing depends on its speed."""
    from versavid_r1.tiny_model import build_tiny_causal_lm

    model = str(build_tiny_causal_lm(tmp_path_factory.getbasetemp() / "tiny-judge-lm", seed=0))
    settings = QwenJudgeSettings(model=model, backend="transformers", device="cpu", max_batch_size=4,
                                 max_wait_ms=5, max_new_tokens=48, chat_max_tokens=1000, decoy_check=False,
                                 prefix_cache=False, cpu_threads=1)
    app = create_qwen_judge_app(settings)
    with BackgroundServer(app) as srv:
        srv.backend = app.state.judge.backend
        yield srv


def metrics(srv) -> dict:
    return httpx.get(srv.url + "/metrics").json()


def dei(i: int) -> dict:
    return {"content": f"<answer>The man slices loaf number {i}.</answer>", "sol": "<answer>A man cuts bread.</answer>",
            "problem_type": "DarkEventInfer"}


def wait_idle(srv) -> None:
    wait_until(lambda: not metrics(srv)["queue_depth"], "the judge's queue to empty")


def test_work_of_a_client_that_gave_up_is_cancelled(slow_judge):
    """Issue 15: 64 items, 2 s timeout, 2 retries made 192 generations and kept the judge busy 80 s.
    The same shape with a 1 s deadline, the first generate call held until the client has given up (all
    three attempts): without cancellation the held call decodes its 48 tokens and the 60 + 64 + 64 queued
    items are generated after it (192 in all); with it, the held call stops after its first decoding step and
    every other item is dropped unrun. The gate makes this independent of the machine's speed."""
    wait_idle(slow_judge)
    with GenerationGate(slow_judge.backend) as reference:          # oracle: a call nobody leaves
        reference.open()
        reply = httpx.post(slow_judge.url + PREDICT_PATH, json=dei(0), timeout=120)
    assert reply.status_code == 200, reply.text
    full_call = reference.forwards[0]
    assert full_call > 10, f"the tiny judge stops after {full_call} steps: too short to show rows stopping"

    wait_idle(slow_judge)
    before = metrics(slow_judge)
    client = JudgeClient({"qwen25": slow_judge.url}, timeout_s=1.0, retries=2, backoff_s=0.01, max_batch_size=64)
    items = [JudgeItem("DarkEventInfer", f"The man slices loaf number {i}.", "<answer>A man cuts bread.</answer>")
             for i in range(64)]

    async def go():
        async with client:
            return await client.score(items)

    with GenerationGate(slow_judge.backend) as gate:
        with pytest.raises(JudgeError, match="timed out"):
            asyncio.run(go())
        wait_until(lambda: metrics(slow_judge)["cancelled_requests"] - before["cancelled_requests"] >= 3,
                   "the service to see the three attempts' connections close")
        assert len(gate.calls) == 1, gate.calls   # only the first batch of 4 had started
        gate.open()                               # the client has gone: let the held call run
        gate.wait_done(1)
        wait_idle(slow_judge)
    after = metrics(slow_judge)
    delta = {k: after[k] - before[k] for k in ("batched_requests", "generate_calls", "cancelled", "cancelled_requests")}
    print(f"after the client gave up: {delta}, forwards of the held call {gate.forwards} (a full call: {full_call})")
    assert delta["cancelled_requests"] == 3
    assert delta["generate_calls"] == 1 and delta["batched_requests"] == 4, "queued items were generated"
    assert gate.forwards == [1], "the rows of the running call did not stop at the next token"
    assert delta["cancelled"] == 192, "every item of the three attempts is counted as cancelled"


def test_a_short_verdict_does_not_wait_behind_a_large_batch(slow_judge):
    """The micro-batcher serves requests round-robin: a lone verdict gets into the next generate call
    (a FIFO queue made it wait for the whole batch of 40 items, 10 generate calls). Generate calls are
    let through one at a time, so "next" is counted in calls, not seconds."""
    wait_idle(slow_judge)
    lone = dei(999)["content"].split(">", 1)[1].split("<", 1)[0]

    async def go(gate: GenerationGate):
        async with httpx.AsyncClient(base_url=slow_judge.url, timeout=WAIT_S) as c:
            big = asyncio.ensure_future(c.post(PREDICT_BATCH_PATH, json={"items": [dei(i) for i in range(40)]}))
            await asyncio.to_thread(gate.wait_held, 1)          # the batch's first call holds 4 of its items
            single = asyncio.ensure_future(c.post(PREDICT_PATH, json=dei(999)))
            await asyncio.to_thread(wait_until, lambda: metrics(slow_judge)["queue_depth"] == 41,
                                    "the lone verdict to be queued")
            gate.release(1)                                     # call 1 runs; call 2 is formed
            await asyncio.to_thread(gate.wait_held, 2)
            assert lone in gate.calls[1], f"the lone verdict is not in the second generate call: {gate.calls}"
            gate.release(1)
            reply = await asyncio.wait_for(single, WAIT_S)
            big_done = big.done()
            big.cancel()                                        # hang up: the rest of the batch is dropped
            return reply, big_done

    with GenerationGate(slow_judge.backend) as gate:
        reply, big_done = asyncio.run(go(gate))
    assert reply.status_code == 200, reply.text
    print(f"generate calls while a 40-item batch ran: {[len(c) for c in gate.calls]}")
    assert not big_done, "the large batch finished first: the verdict waited behind it"
    wait_idle(slow_judge)


def test_a_verdict_does_not_wait_behind_a_long_chat_generation(slow_judge):
    """Chat requests (the caption judge's long JSON replies) run in their own lane: a verdict is answered
    while a chat generation is held in its lane (one shared lane would make it wait for the chat)."""
    wait_idle(slow_judge)
    alone = httpx.post(slow_judge.url + PREDICT_PATH, json=dei(7), timeout=WAIT_S).json()

    async def go(gate: GenerationGate):
        async with httpx.AsyncClient(base_url=slow_judge.url, timeout=WAIT_S) as c:
            chat = asyncio.ensure_future(c.post("/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "Describe the video in detail."}], "max_tokens": 64}))
            await asyncio.to_thread(gate.wait_held, 1)          # the chat generation is held in its lane
            verdict = await asyncio.wait_for(c.post(PREDICT_PATH, json=dei(7)), WAIT_S)
            chat_done = chat.done()
            gate.open()
            return verdict, chat_done, await chat

    with GenerationGate(slow_judge.backend, lane=CHAT_LANE) as gate:
        verdict, chat_done, chat_reply = asyncio.run(go(gate))
    assert verdict.status_code == 200 and chat_reply.status_code == 200
    assert not chat_done and gate.calls == [["<chat>"]]
    assert verdict.json()["raw"] == alone["raw"]   # the same greedy reply as when run alone


# --- connections ------------------------------------------------------------------------------------------
READ_DEADLINE_SLACK_S = 20.0   # generous: a working deadline closes after 0.5 s, a missing one never


@pytest.fixture(scope="module")
def guarded():
    """A service with a 0.5 s request deadline and room for 4 connections (no model calls are made). Its
    keep-alive timeout is long, so a connection closed within READ_DEADLINE_SLACK_S was closed by the deadline."""
    settings = CaptionJudgeSettings(base_url="http://127.0.0.1:9/v1", limits=ServiceLimits(
        request_read_timeout_s=0.5, limit_concurrency=4, keep_alive_s=3600))
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
    """uvicorn alone never closes these connections (its keep-alive timer starts only after a response, and
    it is an hour here): a close within the slack is the read deadline's, on a machine of any speed."""
    port = guarded.port
    with socket.create_connection(("127.0.0.1", port)) as sock:
        t0 = time.monotonic()
        if send:
            sock.sendall(send)
        assert _closed_within(sock, READ_DEADLINE_SLACK_S), "the server kept a half-open connection"
        assert time.monotonic() - t0 >= 0.5 - 0.05, "closed before the deadline"
    assert httpx.get(guarded.url + "/health").status_code == 200     # the service itself is fine


def test_connection_limit_answers_503(guarded):
    """With 4 connections open (accepted: the server's own count), a 5th request gets 503; once they close, 200.
    Polled on the answers, not timed: the server accepts the sockets whenever it gets the CPU."""
    socks = [socket.create_connection(("127.0.0.1", guarded.port)) for _ in range(4)]
    try:
        wait_until(lambda: httpx.get(guarded.url + "/health").status_code == 503,
                   "a 503 with 4 connections open", timeout=30)
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: httpx.get(guarded.url + "/health").status_code == 200,
               "a 200 once the connections closed", timeout=30)


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
    """"Within a second" is shown by what runs, not by a clock (a loaded machine starts Python slowly): the
    error comes before any heavy module is imported (`-X importtime` lists every import)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "src" / script), *argv],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2, out.stderr[-2000:]
    assert needle in out.stderr
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "transformers", "fastapi", "uvicorn", "openai", "pydantic"}, imported


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
        wait_until_ready(stale.url, timeout=60, pid=os.getpid(), instance="stale-run")   # no ServiceNotReady
        with pytest.raises(ServiceNotReady, match="reports instance 'stale-run', not 'new-run'"):
            wait_until_ready(stale.url, timeout=60, instance="new-run")
