"""The AutoDQ caption judge against an OpenAI-compatible stub with scripted replies (tests/
openai_stub_server.py), served for real on 127.0.0.1, and once end to end against the Qwen2.5
judge's /v1/chat/completions on the offline tiny model."""
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from openai_stub_server import HTTPError, StubChat, autodq_rule, prompt_field, serve_stub
from versavid_r1.judges import (
    CaptionJudgeSettings, QwenJudgeSettings, caption_settings_from_args, create_caption_judge_app,
    create_qwen_judge_app,
)
from versavid_r1.judges.autodq import parse_events, parse_json_reply, parse_relations
from versavid_r1.judges.caption_app import make_openai_client
from versavid_r1.judges.wait import wait_until_ready
from versavid_r1.judges.server import BackgroundServer, free_port
from versavid_r1.protocol import (
    DEFAULT_CAPTION_JUDGE_PORT, HEALTH_PATH, PREDICT_BATCH_PATH, PREDICT_PATH, CaptionBatchResponse,
    CaptionResult, Health, ItemError,
)

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "VERSAVID_TEST_UPSTREAM_KEY"
UPSTREAM_KEY = "upstream-key"

GT = "A man opens the door. A man walks into the kitchen. A man turns on the light."
PRED = "A man opens the door. A man sits down."


@pytest.fixture(scope="module")
def stub():
    s = StubChat(api_key=UPSTREAM_KEY)
    srv = serve_stub(s)
    yield s, srv.url
    srv.stop()


@pytest.fixture(autouse=True)
def _upstream_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)


def caption_judge(base_url, model="stub-model", **kw):
    settings = CaptionJudgeSettings(base_url=base_url, model=model, upstream_api_key_env=KEY_ENV,
                                    transport_retries=0, **kw)
    return BackgroundServer(create_caption_judge_app(settings)).start()


@pytest.fixture(scope="module")
def cap(stub):
    _, url = stub
    os.environ[KEY_ENV] = UPSTREAM_KEY
    srv = caption_judge(url + "/v1", max_attempts=3)
    yield srv
    srv.stop()


@pytest.fixture
def fresh(stub):
    s, _ = stub
    s.reset()
    s.reject_json_mode = False
    s.delay_s = 0.0
    yield s
    s.reset()


def post(srv, body, path=PREDICT_PATH, **kw):
    return httpx.post(srv.url + path, json=body, timeout=30, **kw)


def metrics(srv):
    return httpx.get(srv.url + "/metrics").json()


def extraction_calls(s, caption):
    return [r for r in s.requests if prompt_field(r, "caption") == caption and prompt_field(r, "events") is None]


# --- parsing ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reply,events", [
    ('{"events": ["a man runs", "a dog barks"]}', ["a man runs", "a dog barks"]),
    ('```json\n{"events": ["a man runs"]}\n```', ["a man runs"]),
    ('Here you go: {"Events": ["a  man runs", "a man runs"]} Done.', ["a man runs"]),
    ('["a", "b"]', ["a", "b"]),
    ('{"events": [{"event": "a man runs"}]}', ["a man runs"]),
    ('{"events": []}', []),
    ('{"events": [' + ",".join(f'"e{i}"' for i in range(15)) + "]}", [f"e{i}" for i in range(10)]),
])
def test_parse_events(reply, events):
    assert parse_events(reply, 10) == events


@pytest.mark.parametrize("reply", ["", "no json here", '{"events": "a man runs"}', '{"events": [1, 2]}',
                                   '{"a": [], "b": []}', "{broken"])
def test_parse_events_rejects(reply):
    with pytest.raises(ValueError):
        parse_events(reply, 10)


@pytest.mark.parametrize("reply,labels", [
    ('{"results": [{"id": 1, "relation": "entailment"}, {"id": 2, "relation": "neutral"}]}',
     ["entailment", "neutral"]),
    ('{"results": [{"id": 2, "relation": "Contradiction"}, {"id": 1, "relation": "entailed"}]}',
     ["entailment", "contradiction"]),
    ('["entailment", "neutral"]', ["entailment", "neutral"]),
    ('{"1": "neutral", "2": "entailment"}', ["neutral", "entailment"]),
    ('{"relations": [{"label": "ENTAILMENT."}, {"relation": "neutral"}]}', ["entailment", "neutral"]),
])
def test_parse_relations(reply, labels):
    assert parse_relations(reply, 2) == labels


@pytest.mark.parametrize("reply", ['["entailment"]', '["entailment", "maybe"]', '{"results": []}',
                                   '{"results": [{"id": 3, "relation": "neutral"}, {"id": 1, "relation": "neutral"}]}',
                                   '{"results": [{"id": 1, "relation": "neutral"}]}', "nope"])
def test_parse_relations_rejects(reply):
    with pytest.raises(ValueError):
        parse_relations(reply, 2)


def test_parse_json_reply_prefers_fenced_block():
    assert parse_json_reply('text {"x": 1}') == {"x": 1}
    assert parse_json_reply('```\n[1, 2]\n```') == [1, 2]


# --- the service ------------------------------------------------------------------------------------
def test_health_defaults_and_flags(cap):
    h = Health(**httpx.get(cap.url + HEALTH_PATH).json())
    assert (h.ready, h.model, h.backend) == (True, "stub-model", "openai")
    s = caption_settings_from_args([])
    assert (s.host, s.port, s.model, s.json_mode) == ("127.0.0.1", DEFAULT_CAPTION_JUDGE_PORT,
                                                      "gpt-3.5-turbo-0125", "auto")
    assert {s.getsockname()[0] for srv in cap.server.servers for s in srv.sockets} == {"127.0.0.1"}


def test_recall_and_precision_for_known_events(cap, fresh):
    r = post(cap, {"content": f"<think>...</think><answer>{PRED}</answer>", "sol": GT})
    assert r.status_code == 200, r.text
    res = CaptionResult(**r.json())
    assert res.gt_events == ["A man opens the door", "A man walks into the kitchen", "A man turns on the light"]
    assert res.pred_events == ["A man opens the door", "A man sits down"]
    assert res.recall == pytest.approx(1 / 3) and res.precision == pytest.approx(1 / 2)
    # JSON mode asked for, greedy first tries, the upstream key sent as bearer token
    assert fresh.requests and all(q["response_format"] == {"type": "json_object"} for q in fresh.requests)
    assert all(q["temperature"] == 0 and q["model"] == "stub-model" for q in fresh.requests)
    assert all(q["_auth"] == f"Bearer {UPSTREAM_KEY}" for q in fresh.requests)
    assert len(fresh.requests) == 4            # 2 extractions + 2 entailment calls


def test_gt_events_are_cached(cap, fresh):
    gt = "A cat jumps onto the table. A cat knocks over a glass."
    before = metrics(cap)
    results = [post(cap, {"content": "A cat jumps onto the table.", "sol": gt}).json() for _ in range(3)]
    assert len(extraction_calls(fresh, gt)) == 1
    after = metrics(cap)
    assert after["cache_hits"] - before.get("cache_hits", 0) == 2
    assert all(r["recall"] == pytest.approx(0.5) and r["precision"] == 1.0 for r in results)


def test_precomputed_events_skip_extraction(cap, fresh):
    r = post(cap, {"content": PRED, "sol": "ignored when events are given",
                   "events": ["a man opens the door", "a man dances"]})
    res = CaptionResult(**r.json())
    assert res.gt_events == ["a man opens the door", "a man dances"] and res.recall == 0.5
    assert not extraction_calls(fresh, "ignored when events are given")


def test_empty_prediction_scores_zero_without_calls(cap, fresh):
    res = CaptionResult(**post(cap, {"content": "<think>no answer</think>", "sol": GT}).json())
    assert (res.recall, res.precision, res.pred_events) == (0.0, 0.0, [])
    assert fresh.requests == []


def test_malformed_reply_is_retried(cap, fresh):
    before = metrics(cap)
    # only the prediction's extraction is asked first (events are given), so the script hits it
    fresh.script[:] = ["Sure! The events are: a man runs.", '```json\n{"events": ["A man runs"]}\n```']
    r = post(cap, {"content": "A man runs.", "sol": "A man runs.", "events": ["A man runs"]})
    assert r.status_code == 200, r.text
    assert r.json()["precision"] == 1.0 and r.json()["recall"] == 1.0
    after = metrics(cap)
    assert after["malformed"] - before.get("malformed", 0) == 1
    assert after["retries"] - before.get("retries", 0) == 1
    retry = fresh.requests[1]
    assert retry["temperature"] == pytest.approx(0.7)
    assert "could not be used" in retry["messages"][-1]["content"]


def test_persistent_malformed_replies_are_a_permanent_failure_of_that_item(cap, fresh):
    """Not an outage: the protocol's permanent 422 (single) or ItemError (batch), so the client does not
    retry it, and the other items of a batch keep their scores."""
    fresh.script[:] = ["not json"] * 3
    r = post(cap, {"content": "A man runs.", "sol": "x", "events": ["A man runs"]})
    assert r.status_code == 422 and r.json()["permanent"] is True
    detail = r.json()["detail"]
    assert "event extraction" in detail and "3 malformed replies" in detail and "not json" in detail
    assert len(fresh.requests) == 3
    fresh.reset()
    fresh.responder = lambda body: "not json" if prompt_field(body, "caption") == "Garbled." else autodq_rule(body)
    try:
        items = [{"content": "Garbled.", "sol": "x", "events": ["A man runs"]},
                 {"content": "A man runs.", "sol": "A man runs.", "events": ["A man runs"]}]
        r = post(cap, {"items": items}, path=PREDICT_BATCH_PATH)
        assert r.status_code == 200, r.text
        res = CaptionBatchResponse(**r.json()).results
        assert isinstance(res[0], ItemError) and res[0].permanent and "items[0]" in res[0].error
        assert (res[1].recall, res[1].precision) == (1.0, 1.0)
    finally:
        fresh.responder = None


def test_endpoint_errors_give_503_never_a_silent_zero(cap, fresh):
    fresh.script[:] = [HTTPError(500, "upstream exploded")]
    r = post(cap, {"content": "A man runs.", "sol": "x", "events": ["A man runs"]})
    assert r.status_code == 503 and "upstream exploded" in r.json()["detail"]
    fresh.script[:] = [HTTPError(500, "down")]
    r = post(cap, {"items": [{"content": "A b.", "sol": "x", "events": ["c"]}]}, path=PREDICT_BATCH_PATH)
    assert r.status_code == 503 and "items[0]" in r.json()["detail"]


def test_unreachable_model_endpoint_gives_503_naming_it():
    down = f"http://127.0.0.1:{free_port()}/v1"            # nobody listens there
    srv = caption_judge(down)
    try:
        r = post(srv, {"content": PRED, "sol": GT})
        assert r.status_code == 503
        assert down in r.json()["detail"] and "Connection" in r.json()["detail"]
    finally:
        srv.stop()


def test_batch(cap, fresh):
    items = [{"content": PRED, "sol": GT}, {"content": "", "sol": GT},
             {"content": "A man turns on the light.", "sol": GT}]
    r = post(cap, {"items": items}, path=PREDICT_BATCH_PATH)
    res = CaptionBatchResponse(**r.json()).results
    assert [round(x.recall, 3) for x in res] == [0.333, 0.0, 0.333]
    assert [x.precision for x in res] == [0.5, 0.0, 1.0]


@pytest.mark.parametrize("body,status,needle", [
    ({"content": "a"}, 422, "sol"),
    ({"content": "a", "sol": "x" * 16_001}, 422, "sol"),
    ({"content": "a", "sol": ""}, 422, "ground-truth"),
    ({"content": "a", "sol": "b", "events": ["e"] * 65}, 422, "events"),
    ({"content": "a", "sol": "b", "events": "not a list"}, 422, "events"),
])
def test_caption_422s(cap, fresh, body, status, needle):
    r = post(cap, body)
    assert r.status_code == status, r.text
    assert needle in json.dumps(r.json())


def test_a_lone_surrogate_is_a_bad_request(cap, fresh):
    body = json.dumps({"content": "A man \ud800 runs.", "sol": GT}).encode()   # JSON can carry it escaped
    r = httpx.post(cap.url + PREDICT_PATH, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "content" in r.json()["detail"] and "surrogate" in r.json()["detail"]
    assert fresh.requests == []                                              # no model call


def test_json_mode_falls_back_per_call_when_rejected(stub, fresh):
    """A server without JSON mode: each call is repeated without it and scores as before."""
    fresh.reject_json_mode = True
    srv = caption_judge(stub[1] + "/v1")
    try:
        r = post(srv, {"content": PRED, "sol": GT})
        assert r.status_code == 200, r.text
        assert r.json()["recall"] == pytest.approx(1 / 3)
        m = metrics(srv)
        assert m["json_mode_fallbacks"] == 4 and m["json_mode"] is True   # 2 extractions, 2 entailments
    finally:
        srv.stop()


def test_one_rejected_request_does_not_switch_json_mode_off(stub, fresh):
    """Issue 15: one over-long caption rejected in JSON mode switched it off for the life of the process."""
    fresh.reject_json_mode = lambda body: "LONG" in json.dumps(body)
    srv = caption_judge(stub[1] + "/v1")
    try:
        r = post(srv, {"content": "LONG " * 50 + "A man runs.", "sol": "x", "events": ["A man runs"]})
        assert r.status_code == 200, r.text
        fallbacks = metrics(srv)["json_mode_fallbacks"]
        assert fallbacks >= 1
        fresh.reset()
        r = post(srv, {"content": PRED, "sol": GT})
        assert r.status_code == 200, r.text
        assert len(fresh.requests) == 4
        assert all(q.get("response_format") == {"type": "json_object"} for q in fresh.requests)
        assert metrics(srv)["json_mode_fallbacks"] == fallbacks
    finally:
        srv.stop()


def test_json_mode_off_and_concurrency_limit(stub, fresh):
    fresh.delay_s = 0.05
    srv = caption_judge(stub[1] + "/v1", json_mode="off", concurrency=2)
    try:
        items = [{"content": f"A dog runs {i}.", "sol": f"A dog runs {i}. A cat sits."} for i in range(6)]
        r = post(srv, {"items": items}, path=PREDICT_BATCH_PATH)
        assert r.status_code == 200, r.text
        assert fresh.max_active == 2
        assert not any("response_format" in q for q in fresh.requests)
    finally:
        srv.stop()


def test_auth_on_the_caption_service(stub, fresh):
    srv = caption_judge(stub[1] + "/v1", api_key="cap-token")
    try:
        assert post(srv, {"content": PRED, "sol": GT}).status_code == 401
        ok = post(srv, {"content": PRED, "sol": GT}, headers={"Authorization": "Bearer cap-token"})
        assert ok.status_code == 200
        assert httpx.get(srv.url + HEALTH_PATH).status_code == 200
    finally:
        srv.stop()


def test_azure_openai_client(stub, fresh, monkeypatch):
    settings = CaptionJudgeSettings(azure_endpoint=stub[1], api_version="2024-06-01",
                                    model="my-deployment", upstream_api_key_env=KEY_ENV, transport_retries=0)
    import openai
    assert isinstance(make_openai_client(settings), openai.AsyncAzureOpenAI)
    srv = BackgroundServer(create_caption_judge_app(settings)).start()
    try:
        assert httpx.get(srv.url + HEALTH_PATH).json()["backend"] == "azure"
        r = post(srv, {"content": PRED, "sol": GT})
        assert r.status_code == 200, r.text
        assert r.json()["precision"] == 0.5
        assert {q["_deployment"] for q in fresh.requests} == {"my-deployment"}
        assert {q["_api_version"] for q in fresh.requests} == {"2024-06-01"}
    finally:
        srv.stop()


def test_missing_openai_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="OPENAI_API_KEY"):
        make_openai_client(CaptionJudgeSettings())
    with pytest.raises(ValueError, match="api-version"):
        CaptionJudgeSettings(azure_endpoint="https://x.openai.azure.com").validate()


def test_entry_script(stub, fresh):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OPENAI_API_KEY": UPSTREAM_KEY}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "src" / "gpt35_judge_service.py"), "--base-url", stub[1] + "/v1",
         "--port", str(port), "--log-level", "warning", "--api-key", "tok"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, timeout=180, alive=lambda: proc.poll() is None)   # start-up on a loaded machine
        r = httpx.post(url + PREDICT_PATH, json={"content": PRED, "sol": GT},
                       headers={"Authorization": "Bearer tok"}, timeout=30)
        assert r.status_code == 200 and r.json()["recall"] == pytest.approx(1 / 3)
        assert {q["model"] for q in fresh.requests} == {"gpt-3.5-turbo-0125"}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_end_to_end_against_the_qwen_judge(tmp_path_factory, monkeypatch):
    """The caption judge, unchanged, on the Qwen2.5 judge's /v1/chat/completions (tiny random model,
    with auth). The random model cannot write the JSON asked for, so the honest outcome is the
    protocol's permanent 422 that names the reason; valid numbers would also be accepted. Either way the calls must have reached
    the Qwen judge with JSON mode accepted (no fallback)."""
    from versavid_r1.tiny_model import build_tiny_causal_lm

    model = str(build_tiny_causal_lm(tmp_path_factory.getbasetemp() / "tiny-judge-lm", seed=0))
    qwen = QwenJudgeSettings(model=model, backend="transformers", device="cpu", api_key="qwen-key",
                             served_model_name="qwen-local", chat_max_tokens=48)
    with BackgroundServer(create_qwen_judge_app(qwen)) as qsrv:
        monkeypatch.setenv(KEY_ENV, "qwen-key")
        srv = caption_judge(qsrv.url + "/v1", model="qwen-local", max_attempts=2, max_tokens=48)
        try:
            r = post(srv, {"content": PRED, "sol": GT})
            print("end to end:", r.status_code, r.text[:300])
            if r.status_code == 200:
                res = CaptionResult(**r.json())
                assert 0.0 <= res.recall <= 1.0 and 0.0 <= res.precision <= 1.0
            else:
                assert r.status_code == 422 and r.json()["permanent"] is True, r.text
                detail = r.json()["detail"]
                assert "malformed replies" in detail and "event extraction" in detail
            cm = metrics(srv)
            assert cm.get("json_mode_fallbacks", 0) == 0 and cm.get("endpoint_errors", 0) == 0
            qm = httpx.get(qsrv.url + "/metrics").json()
            assert qm["requests"] >= 2 and qm["errors"] == 0
        finally:
            srv.stop()
