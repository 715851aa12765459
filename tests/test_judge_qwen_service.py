"""The Qwen2.5 judge with the transformers backend on the offline tiny causal LM, served for real on
127.0.0.1. The tiny model's weights are random, so its verdicts are mostly `unparseable`: these tests
check the plumbing (scores and parsing are tested with scripted replies in test_judge_backends.py)."""
import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from versavid_r1.judges import (
    QwenJudgeSettings, ServiceLimits, create_qwen_judge_app, parse_verdict, qwen_settings_from_args,
)
from versavid_r1.judges.wait import wait_until_ready
from versavid_r1.judges.server import BackgroundServer, free_port
from versavid_r1.protocol import (
    DEFAULT_QWEN_JUDGE_PORT, EMPTY, HEALTH_PATH, PREDICT_BATCH_PATH, PREDICT_PATH, UNPARSEABLE,
    Health, JudgeBatchResponse, JudgeResult,
)

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token"


def tiny_lm(tmp_path_factory) -> str:
    from versavid_r1.tiny_model import build_tiny_causal_lm

    return str(build_tiny_causal_lm(tmp_path_factory.getbasetemp() / "tiny-judge-lm", seed=0))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_lm(tmp_path_factory)


@pytest.fixture(scope="module")
def judge(model_path):
    settings = QwenJudgeSettings(
        model=model_path, backend="transformers", device="cpu", served_model_name="tiny-judge",
        max_batch_size=16, max_wait_ms=50, max_new_tokens=6, chat_max_tokens=16, instance_token="judge-under-test",
        limits=ServiceLimits(max_body_bytes=64_000, max_field_chars=2_000, max_batch_items=40),
    )
    with BackgroundServer(create_qwen_judge_app(settings)) as srv:
        yield srv


def dei(pred="<think>..</think><answer>The man slices the bread.</answer>", gt="A man cuts bread."):
    return {"content": pred, "sol": f"<answer>{gt}</answer>", "problem_type": "DarkEventInfer"}


def mix(pred="<answer>red</answer>", gt="red", q="What colour is the ball?"):
    return {"content": pred, "sol": f"<answer>{gt}</answer>", "problem_type": "MixVidQA", "question": q}


def metrics(srv):
    return httpx.get(srv.url + "/metrics").json()


def test_health_docs_and_bind_address(judge):
    h = Health(**httpx.get(judge.url + HEALTH_PATH).json())
    assert (h.status, h.ready, h.model, h.backend, h.queue_depth) == ("ok", True, "tiny-judge", "transformers", 0)
    assert (h.pid, h.instance) == (os.getpid(), "judge-under-test")
    spec = httpx.get(judge.url + "/openapi.json").json()
    for path in (PREDICT_PATH, PREDICT_BATCH_PATH, HEALTH_PATH, "/v1/chat/completions"):
        assert path in spec["paths"]
    assert httpx.get(judge.url + "/docs").status_code == 200
    # bound to the loopback interface only
    bound = {s.getsockname()[0] for srv in judge.server.servers for s in srv.sockets}
    assert bound == {"127.0.0.1"}


def test_safe_defaults():
    assert QwenJudgeSettings().host == "127.0.0.1"
    s = qwen_settings_from_args(["--model", "some/judge"])  # no default model: none is loaded unasked
    assert (s.host, s.port, s.api_key, s.backend) == ("127.0.0.1", DEFAULT_QWEN_JUDGE_PORT, None, "transformers")
    assert s.limits.max_body_bytes > 0 and s.limits.max_field_chars > 0


def test_predict_scores_with_the_model(judge):
    before = metrics(judge)["generate_calls"]
    r = httpx.post(judge.url + PREDICT_PATH, json=dei())
    assert r.status_code == 200, r.text
    res = JudgeResult(**r.json())
    assert isinstance(res.raw, str)
    v = parse_verdict("DarkEventInfer", res.raw)         # the service's verdict is the strict parse
    assert (res.output, res.verdict) == (v.score, v.label)
    assert res.output in (0.0, 1.0, 2.0)
    assert metrics(judge)["generate_calls"] == before + 1


def test_empty_prediction_scores_zero_without_generation(judge):
    before = metrics(judge)["generate_calls"]
    for content in ("<think>Score: 2</think>", "<answer>   </answer>", ""):
        res = JudgeResult(**httpx.post(judge.url + PREDICT_PATH, json=dei(pred=content)).json())
        assert (res.output, res.verdict, res.raw) == (0.0, EMPTY, None)
    assert metrics(judge)["generate_calls"] == before


def test_batch_keeps_order_and_counts_unparseable(judge):
    items = [dei(), mix(), dei(pred="<answer></answer>"), mix(q="Who jumps?"), dei(gt="bread")]
    r = httpx.post(judge.url + PREDICT_BATCH_PATH, json={"items": items})
    assert r.status_code == 200, r.text
    resp = JudgeBatchResponse(**r.json())
    assert len(resp.results) == len(items)
    assert resp.results[2].verdict == EMPTY and resp.results[2].raw is None
    for i, (item, res) in enumerate(zip(items, resp.results)):
        if i == 2:
            continue
        assert isinstance(res.raw, str)
        v = parse_verdict(item["problem_type"], res.raw)
        assert (res.output, res.verdict) == (v.score, v.label)
    assert resp.unparseable == sum(res.verdict == UNPARSEABLE for res in resp.results)


def test_microbatching_groups_concurrent_requests(judge):
    n = 24
    before = metrics(judge)

    async def fire():
        async with httpx.AsyncClient(base_url=judge.url, timeout=60) as c:
            return await asyncio.gather(*(c.post(PREDICT_PATH, json=dei(gt=f"event {i}")) for i in range(n)))

    responses = asyncio.run(fire())
    assert all(r.status_code == 200 for r in responses)
    after = metrics(judge)
    calls = after["generate_calls"] - before["generate_calls"]
    assert after["requests"] - before["requests"] == n
    assert 1 <= calls <= n // 2, f"{n} concurrent requests took {calls} generate calls"
    assert after["max_batch_seen"] >= 4


def test_lone_requests_do_not_wait_for_partners(model_path):
    """With one client, a request runs at once; the micro-batching wait applies only to concurrent traffic.
    The wait is set to 10 minutes: a request that waited for partners would run into the client's timeout,
    on a machine of any speed."""
    settings = QwenJudgeSettings(model=model_path, backend="transformers", device="cpu", max_batch_size=16,
                                 max_wait_ms=600_000, max_new_tokens=4)
    with BackgroundServer(create_qwen_judge_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=120) as c:
        for i in range(3):
            assert c.post(PREDICT_PATH, json=dei(gt=f"event {i}")).status_code == 200
        assert metrics(srv)["generate_calls"] == 3


def test_batched_reply_equals_single_reply(judge):
    """Greedy decoding with left padding: a request's reply does not depend on its batch mates."""
    item = dei(pred="<answer>The woman pours water.</answer>", gt="She fills a cup.")
    alone = httpx.post(judge.url + PREDICT_PATH, json=item).json()["raw"]
    others = [dei(pred=f"<answer>{'long ' * k}text</answer>") for k in range(1, 6)]
    batch = httpx.post(judge.url + PREDICT_BATCH_PATH, json={"items": others + [item]}).json()
    assert batch["results"][-1]["raw"] == alone


def test_chat_completions_through_the_openai_client(judge):
    client = openai.OpenAI(base_url=judge.url + "/v1", api_key="unused", max_retries=0)
    out = client.chat.completions.create(
        model="tiny-judge", max_tokens=5, temperature=0,
        messages=[{"role": "system", "content": "Reply in JSON."},
                  {"role": "user", "content": "List the events."}],
        response_format={"type": "json_object"})
    assert out.object == "chat.completion" and out.model == "tiny-judge"
    choice = out.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert 0 < out.usage.prompt_tokens and 0 <= out.usage.completion_tokens <= 5
    # content parts, and max_tokens above the cap is clamped to --chat-max-tokens (16)
    out = client.chat.completions.create(
        model="x", max_tokens=10_000, messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    assert out.usage.completion_tokens <= 16
    assert [m.id for m in client.models.list().data] == ["tiny-judge"]


@pytest.mark.parametrize("path,body,needle", [
    (PREDICT_PATH, {"sol": "x", "problem_type": "DarkEventInfer"}, "content"),
    (PREDICT_PATH, {"content": "a", "sol": "x", "problem_type": "caption"}, "problem_type"),
    (PREDICT_PATH, {"content": "<answer>a</answer>", "sol": "  ", "problem_type": "MixVidQA"}, "sol"),
    (PREDICT_PATH, {"content": "x" * 2001, "sol": "x", "problem_type": "MixVidQA"}, "content"),
    (PREDICT_PATH, {"content": "a", "sol": "x", "problem_type": "MixVidQA", "question": "q" * 2001}, "question"),
    (PREDICT_BATCH_PATH, {"items": [{"content": "a", "sol": "x" * 2001, "problem_type": "MixVidQA"}]}, "items[0].sol"),
    (PREDICT_BATCH_PATH, {"items": [{"content": "a", "sol": "b", "problem_type": "MixVidQA"}] * 41}, "41 items"),
    (PREDICT_BATCH_PATH, {"item": []}, "items"),
    ("/v1/chat/completions", {"messages": []}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stream": True}, "stream"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 2}, "n"),
    ("/v1/chat/completions", {"messages": [{"role": "tool", "content": "hi"}]}, "role"),
])
def test_malformed_requests_get_422_with_a_clear_message(judge, path, body, needle):
    r = httpx.post(judge.url + path, json=body)
    assert r.status_code == 422, r.text
    payload = r.json()
    message = payload.get("message") or payload["detail"]
    assert needle in str(message), payload


@pytest.mark.parametrize("path,body,needle", [
    (PREDICT_PATH, {"content": "<answer>bad \ud800 text</answer>", "sol": "x", "problem_type": "MixVidQA"}, "content"),
    (PREDICT_BATCH_PATH, {"items": [{"content": "a", "sol": "x", "problem_type": "MixVidQA", "question": "q\udfff"}]},
     "items[0].question"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi \ud800"}]}, "messages[0].content"),
])
def test_a_lone_surrogate_is_a_bad_request_not_an_outage(judge, path, body, needle):
    """JSON can carry a lone surrogate; no tokenizer can encode it. 422 naming the field, not a 503 the
    client would retry."""
    r = httpx.post(judge.url + path, content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"] and "surrogate" in r.json()["detail"]


def test_invalid_json_gets_422(judge):
    r = httpx.post(judge.url + PREDICT_PATH, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["message"]


def test_body_size_limit(judge):
    big = {"content": "x" * 70_000, "sol": "y", "problem_type": "DarkEventInfer"}
    r = httpx.post(judge.url + PREDICT_PATH, json=big)
    assert r.status_code == 413
    # a streamed (chunked) body without Content-Length is cut off too
    def chunks():
        yield b'{"content": "'
        for _ in range(80):
            yield b"x" * 1000
        yield b'", "sol": "y", "problem_type": "DarkEventInfer"}'
    r = httpx.post(judge.url + PREDICT_PATH, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


@pytest.fixture(scope="module")
def judge_with_key(model_path):
    os.environ["VERSAVID_JUDGE_API_KEY"] = TOKEN
    try:
        settings = qwen_settings_from_args(["--model", model_path, "--device", "cpu", "--max-request-tokens",
                                            "1500", "--max-input-tokens", "500", "--max-new-tokens", "3"])
    finally:
        del os.environ["VERSAVID_JUDGE_API_KEY"]
    assert settings.api_key == TOKEN
    with BackgroundServer(create_qwen_judge_app(settings)) as srv:
        yield srv


def test_auth_required_when_a_key_is_set(judge_with_key, judge):
    url = judge_with_key.url
    assert httpx.post(url + PREDICT_PATH, json=dei()).status_code == 401
    bad = httpx.post(url + PREDICT_PATH, json=dei(), headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    assert httpx.post(url + PREDICT_BATCH_PATH, json={"items": [dei()]}).status_code == 401
    ok = httpx.post(url + PREDICT_PATH, json=dei(gt="bread"), headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200, ok.text
    assert httpx.get(url + HEALTH_PATH).status_code == 200          # health stays open
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}])
    out = openai.OpenAI(base_url=url + "/v1", api_key=TOKEN, max_retries=0).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert out.choices[0].message.role == "assistant"
    # without a key configured, no header is needed
    assert httpx.post(judge.url + PREDICT_PATH, json=dei()).status_code == 200


def test_prompt_longer_than_max_input_tokens_gets_422(judge_with_key):
    r = httpx.post(judge_with_key.url + PREDICT_PATH, json=dei(gt="a very long ground truth " * 80),
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 422 and "max-input-tokens" in r.json()["detail"]
    items = [dei(gt="short"), dei(pred="<answer></answer>"), dei(gt="a very long ground truth " * 80)]
    r = httpx.post(judge_with_key.url + PREDICT_BATCH_PATH, json={"items": items},
                   headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 422 and r.json()["detail"].startswith("items[2]: prompt has")


def test_work_per_request_is_bounded(judge_with_key):
    """One request's prompts together may hold at most --max-request-tokens (1500 here; each of these
    prompts holds about 300)."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    ok = httpx.post(judge_with_key.url + PREDICT_BATCH_PATH, json={"items": [dei(gt=f"e{i}") for i in range(3)]},
                    headers=auth, timeout=60)
    assert ok.status_code == 200, ok.text
    r = httpx.post(judge_with_key.url + PREDICT_BATCH_PATH, json={"items": [dei(gt=f"e{i}") for i in range(8)]},
                   headers=auth)
    assert r.status_code == 422 and "--max-request-tokens 1500" in r.json()["detail"]


def _non_loopback_ip():
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))     # no packet is sent; picks the outgoing interface
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


def test_entry_script_serves_on_loopback(model_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("VERSAVID_JUDGE_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "src" / "qwen25_judge_service.py"), "--model", model_path,
         "--backend", "transformers", "--device", "cpu", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, timeout=180, alive=lambda: proc.poll() is None)   # start-up on a loaded machine
        r = httpx.post(url + PREDICT_PATH, json=mix())
        assert r.status_code == 200 and r.json()["verdict"] in ("True", "False", UNPARSEABLE)
        ip = _non_loopback_ip()
        if ip is not None:  # not reachable from another interface of this machine
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"http://{ip}:{port}{HEALTH_PATH}", timeout=2)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_wait_cli_reports_a_dead_service_with_its_log(tmp_path):
    """run_qwen25vl_train.sh waits with `python -m versavid_r1.judges.wait`: a dead process ends the wait."""
    log = tmp_path / "judge.log"
    log.write_text("Traceback: model directory not found\n")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    out = subprocess.run(
        [sys.executable, "-m", "versavid_r1.judges.wait", f"http://127.0.0.1:{free_port()}", "--pid", str(proc.pid),
         "--name", "Qwen2.5 judge", "--log", str(log), "--timeout", "20"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "the Qwen2.5 judge exited during start-up" in out.stderr and "model directory not found" in out.stderr
