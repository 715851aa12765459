"""Entry points fail fast and clearly: the judge services without a model or with a missing or refused key,
each one line and exit status 2 before anything heavy starts; a caption judge whose model endpoint does not
answer yet is up but not ready until one real call has succeeded (a fake OpenAI API over HTTP, the real
openai client inside the service)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from openai_stub_server import HTTPError, StubChat, serve_stub
from versavid_r1.judges.server import free_port

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "VERSAVID_TEST_UPSTREAM_KEY"


def entry(script: str, *argv: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", KEY_ENV)}
    return subprocess.run([sys.executable, str(ROOT / "src" / script), *argv], env={**full, **env},
                          capture_output=True, text=True, timeout=120)


def one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return lines[0]


def test_the_qwen_judge_without_a_model_says_what_to_pass():
    said = one_line(entry("qwen25_judge_service.py"))  # used to load (or download) Qwen2.5-72B
    assert "no judge model: pass --model" in said and "--backend lexical" in said


def test_the_caption_judge_without_a_key_stops_at_once():
    said = one_line(entry("gpt35_judge_service.py"))
    assert "the OpenAI API needs a key: set $OPENAI_API_KEY" in said


def test_the_caption_judge_with_a_refused_key_stops_after_one_real_call():
    stub = StubChat(api_key="the-right-key")
    srv = serve_stub(stub)
    try:
        said = one_line(entry("gpt35_judge_service.py", "--base-url", srv.url + "/v1", "--model", "m",
                              "--upstream-api-key-env", KEY_ENV, "--port", str(free_port()), **{KEY_ENV: "wrong"}))
    finally:
        srv.stop()
    assert "refused the key in $VERSAVID_TEST_UPSTREAM_KEY (HTTP 401)" in said
    assert [r["_auth"] for r in stub.requests] == ["Bearer wrong"], "one real call, with the key given"


def test_the_caption_judge_is_not_ready_until_a_real_call_succeeds(tmp_path):
    answering = threading.Event()
    stub = StubChat(api_key="k", responder=lambda body: "OK" if answering.is_set() else HTTPError(503, "warming up"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    srv = serve_stub(stub)
    try:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "src/gpt35_judge_service.py"), "--base-url", srv.url + "/v1", "--model", "m",
             "--upstream-api-key-env", KEY_ENV, "--transport-retries", "0", "--port", str(port), "--log-level",
             "warning"], env={**os.environ, KEY_ENV: "k"}, stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "judge.log", "w"))
        try:
            deadline = time.monotonic() + 120
            while True:  # the service comes up, its endpoint still failing: not ready
                assert proc.poll() is None, (tmp_path / "judge.log").read_text()[-2000:]
                assert time.monotonic() < deadline
                try:
                    health = httpx.get(url + "/health", timeout=5).json()
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert health["ready"] is False and health["status"] == "unverified"
            answering.set()
            while not httpx.get(url + "/health", timeout=5).json()["ready"]:  # the background call succeeds
                assert time.monotonic() < deadline, (tmp_path / "judge.log").read_text()[-2000:]
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        srv.stop()
    assert "does not answer yet" in (tmp_path / "judge.log").read_text()
