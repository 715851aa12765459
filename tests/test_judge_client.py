"""JudgeClient against real HTTP judge stubs on 127.0.0.1 (tests/judge_stub_server.py)."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from judge_stub_server import StubJudge, down_url
from versavid_r1.protocol import PREDICT_BATCH_PATH, PREDICT_PATH, CaptionResult, Health, JudgeResult
from versavid_r1.rewards import JudgeClient, JudgeError, JudgeItem, make_versavid_reward, RewardConfig

GT = "<answer>a red ball</answer>"


def mix(answer: str, question: str = "Which object?") -> JudgeItem:
    return JudgeItem("MixVidQA", answer, GT, question)


def client_for(urls, **kw) -> JudgeClient:
    kw.setdefault("timeout_s", 5.0)
    kw.setdefault("backoff_s", 0.01)
    kw.setdefault("retries", 2)
    if isinstance(urls, str):
        urls = [urls]
    return JudgeClient({"qwen25": urls, "caption": urls}, **kw)


def score(client: JudgeClient, items):
    async def go():
        async with client:
            return await client.score(items)

    return asyncio.run(go())


@pytest.fixture(scope="module")
def fast():
    with StubJudge("qwen") as stub:
        yield stub


@pytest.fixture(scope="module")
def slow():
    with StubJudge("qwen", delay_s=0.2) as stub:
        yield stub


def test_64_calls_run_concurrently():
    """The stub answers only once 17 requests are in flight together: a client that sent fewer at once would
    run into its timeout (counted, not timed)."""
    with StubJudge("qwen", delay_s=0.2, hold_until_in_flight=17) as stub:
        client = client_for(stub.url, max_batch_size=1, max_concurrency=64, timeout_s=30)
        results = score(client, [mix(f"answer {i}") for i in range(64)])
    assert stub.count(PREDICT_PATH) == 64 and stub.max_in_flight > 16
    assert all(isinstance(r, JudgeResult) and r.output == 0.0 for r in results)
    assert client.stats.calls == 64 and client.stats.requests == 64 and client.stats.latency_count == 64
    assert client.stats.latency_max_s >= 0.2


def test_versavid_reward_step_takes_about_one_judge_latency():
    """A step's 64 judged answers go out as 4 batch requests at once (the stub answers only once all 4 are in
    flight: sent one after another they would run into the timeout)."""
    with StubJudge("qwen", hold_until_in_flight=4) as slow:
        fn = make_versavid_reward(RewardConfig(qwen_judge_urls=slow.url, caption_judge_urls=slow.url, retries=0,
                                               timeout_s=30))
        out = _reward_step(fn)
    assert out == [0.0] * 64
    assert sum(k for _, k in slow.requests) == 64 and slow.count(PREDICT_BATCH_PATH) == 4
    assert slow.max_in_flight == 4


def _reward_step(fn):
    n = 64  # B x G of a training step, all different answers

    async def step():
        async with fn.client:
            return await fn(prompts=["q"] * n, completions=[f"<think>t</think><answer>guess {i}</answer>" for i in range(n)],
                            solution=[GT] * n, problem_type=["MixVidQA"] * n, problem=["q"] * n)

    return asyncio.run(step())


def test_concurrency_limit_is_respected(slow):
    slow.reset()
    client = client_for(slow.url, max_batch_size=1, max_concurrency=4)
    score(client, [mix(f"limit {i}") for i in range(12)])
    assert slow.max_in_flight <= 4


def test_batch_endpoint_chunks_and_keeps_order():
    items = [JudgeItem("MixVidQA", f"ans {i}" if i % 3 == 0 else f"wrong {i}", f"<answer>ans {i}</answer>", "q")
             for i in range(64)]
    with StubJudge("qwen", hold_until_in_flight=4) as slow:   # 4 batches in parallel, or the timeout
        client = client_for(slow.url, max_batch_size=16, timeout_s=30)
        results = score(client, items)
    assert slow.requests == [(PREDICT_BATCH_PATH, 16)] * 4 and slow.max_in_flight == 4
    assert [r.output for r in results] == [1.0 if i % 3 == 0 else 0.0 for i in range(64)]
    assert client.stats.batch_requests == 4 and client.stats.calls == 64


def test_batch_endpoint_results_follow_items(fast):
    fast.reset()
    client = client_for(fast.url, max_batch_size=5)
    answers = [f"answer {i}" for i in range(12)] + ["a red ball"]
    results = score(client, [mix(a) for a in answers])
    assert [r.output for r in results] == [0.0] * 12 + [1.0]
    assert sorted(n for _, n in fast.requests) == [3, 5, 5]
    assert client.stats.batch_requests == 3 and client.stats.calls == 13


def test_single_item_uses_predict(fast):
    fast.reset()
    results = score(client_for(fast.url), [mix("a red ball")])
    assert fast.requests == [(PREDICT_PATH, 1)]
    assert results[0].output == 1.0


def test_cache_hits_and_dedupe_within_a_call(fast):
    fast.reset()
    client = client_for(fast.url)
    items = [mix("a"), mix("b"), mix("a"), mix("a"), mix("c"), mix("b")]
    score(client, items)
    assert sum(n for _, n in fast.requests) == 3
    assert client.stats.cache_hits == 3 and client.stats.calls == 3
    fast.reset()
    score(client, items)  # a new event loop, same client: everything cached
    assert fast.requests == []
    assert client.stats.cache_hits == 9
    # the key includes the question, the ground truth and the problem type
    score(client, [mix("a", question="Another question?"), JudgeItem("DarkEventInfer", "a", GT, "Which object?"),
                   JudgeItem("MixVidQA", "a", "<answer>a blue cube</answer>", "Which object?")])
    assert sum(n for _, n in fast.requests) == 3


def test_cache_is_bounded_lru(fast):
    client = client_for(fast.url, cache_size=2)
    score(client, [mix("x1"), mix("x2"), mix("x3")])
    assert client.cache_len() == 2
    fast.reset()
    score(client, [mix("x3")])  # recent: cached
    assert fast.requests == []
    score(client, [mix("x1")])  # evicted: asked again
    assert fast.requests == [(PREDICT_PATH, 1)]


def test_retries_5xx_then_succeeds():
    with StubJudge("qwen", fail_first=2, fail_status=503) as stub:
        client = client_for(stub.url, retries=3)
        results = score(client, [mix("a red ball")])
        assert results[0].output == 1.0
        assert client.stats.retries == 2 and client.stats.requests == 3 and client.stats.failures == 0
        assert len(stub.requests) == 3


def test_retries_exhausted_raise_naming_url_and_cause():
    with StubJudge("qwen", fail_first=100, fail_status=500) as stub:
        client = client_for(stub.url, retries=2)
        with pytest.raises(JudgeError) as info:
            score(client, [mix("a red ball")])
        err = info.value
        assert stub.url + PREDICT_PATH in str(err) and "HTTP 500" in str(err) and "3 attempts" in str(err)
        assert err.status == 500 and not err.fatal
        assert client.stats.retries == 2 and client.stats.failures == 1 and len(stub.requests) == 3


@pytest.mark.parametrize("on_judge_error", ["raise", "skip"])
def test_4xx_is_not_retried_and_always_raises(on_judge_error):
    with StubJudge("qwen", fail_first=1, fail_status=422) as stub:
        client = client_for(stub.url, retries=3, on_judge_error=on_judge_error)
        with pytest.raises(JudgeError, match="HTTP 422.*scripted failure 422") as info:
            score(client, [mix("a red ball")])
        assert info.value.fatal and len(stub.requests) == 1 and client.stats.retries == 0


def test_real_422_from_a_wrong_request_names_the_body(fast):
    # A caption item sent to the Qwen judge violates its request model: FastAPI answers 422.
    client = JudgeClient({"caption": fast.url}, retries=3, backoff_s=0.01, on_judge_error="skip")
    with pytest.raises(JudgeError, match="HTTP 422") as info:
        score(client, [JudgeItem("caption", "a dog runs", "<answer>a dog</answer>")])
    assert "problem_type" in str(info.value) and "Field required" in str(info.value)


def test_timeout_is_bounded_and_loud():
    # A judge that takes 60 s: two attempts with a 0.2 s deadline end far sooner on any machine (slack for load).
    with StubJudge("qwen", delay_s=60.0) as stub:
        client = client_for(stub.url, timeout_s=0.2, retries=1)
        t0 = time.perf_counter()
        with pytest.raises(JudgeError, match="timed out") as info:
            score(client, [mix("a red ball")])
        assert time.perf_counter() - t0 < 30
        assert info.value.attempts == 2 and client.stats.retries == 1


def test_timeout_then_success_on_retry():
    state = {"n": 0}

    class FlakyStub(StubJudge):
        async def _enter(self, path, n):
            state["n"] += 1
            self.delay_s = 1.0 if state["n"] == 1 else 0.0
            return await super()._enter(path, n)

    with FlakyStub("qwen") as stub:
        client = client_for(stub.url, timeout_s=0.3, retries=2)
        assert score(client, [mix("a red ball")])[0].output == 1.0
        assert client.stats.retries == 1


def test_down_judge_raises_by_default():
    url = down_url()
    client = client_for(url, retries=2, timeout_s=60)
    t0 = time.perf_counter()
    with pytest.raises(JudgeError) as info:
        score(client, [mix("a"), mix("b")])
    assert time.perf_counter() - t0 < 30   # a refused connection is not waited on (3 x 60 s if it were)
    msg = str(info.value)
    assert url in msg and "ConnectError" in msg and "3 attempts" in msg


def test_down_judge_skip_mode_returns_none_and_counts():
    client = client_for(down_url(), retries=1, on_judge_error="skip", max_batch_size=1)
    results = score(client, [mix("a"), mix("b"), mix("a"), mix("")])
    assert results[:3] == [None, None, None]
    assert results[3].output == 0.0 and results[3].verdict == "empty"  # empty answer: no call
    assert client.stats.failures == 2 and client.stats.skipped == 3 and client.stats.empty == 1
    assert client.cache_len() == 0  # failures are not cached


def test_round_robin_over_two_replicas():
    with StubJudge("qwen") as a, StubJudge("qwen") as b:
        client = client_for([a.url, b.url], max_batch_size=1)
        score(client, [mix(f"rr {i}") for i in range(8)])
        assert len(a.requests) == 4 and len(b.requests) == 4


def test_failover_to_the_other_replica():
    with StubJudge("qwen") as alive:
        client = client_for([down_url(), alive.url], max_batch_size=1, retries=1)
        results = score(client, [mix("a red ball"), mix("x"), mix("y"), mix("z")])
        assert [r.output for r in results] == [1.0, 0.0, 0.0, 0.0]
        assert client.stats.retries >= 1 and client.stats.failures == 0


def test_falls_back_to_single_requests_without_batch_endpoint():
    with StubJudge("qwen", batch_endpoint=False) as stub:
        client = client_for(stub.url)
        results = score(client, [mix("a red ball"), mix("x"), mix("y")])
        assert [r.output for r in results] == [1.0, 0.0, 0.0]
        assert stub.count(PREDICT_PATH) == 3


@pytest.mark.parametrize("on_judge_error", ["raise", "skip"])
def test_out_of_range_score_is_an_error_not_a_reward(on_judge_error):
    with StubJudge("qwen", score_fn=lambda req: 7.0) as stub:
        client = client_for(stub.url, on_judge_error=on_judge_error)
        if on_judge_error == "raise":
            with pytest.raises(JudgeError, match="outside"):
                score(client, [mix("a"), mix("b")])
        else:
            assert score(client, [mix("a"), mix("b")]) == [None, None]
            assert client.stats.skipped == 2


def test_unparseable_verdicts_are_counted():
    with StubJudge("qwen", score_fn=lambda req: JudgeResult(output=0.0, verdict="unparseable")) as stub:
        client = client_for(stub.url)
        score(client, [mix("a"), mix("b"), mix("c")])
        assert client.stats.unparseable == 3


def test_caption_judge_single_and_batch():
    with StubJudge("caption", caption_scores={"a dog runs.": (0.5, 0.25)}) as stub:
        client = client_for(stub.url)
        items = [JudgeItem("caption", "A dog runs.", "<answer>x</answer>", "q"),
                 JudgeItem("caption", "x", "<answer>x</answer>", "q")]
        results = score(client, items)
        assert all(isinstance(r, CaptionResult) for r in results)
        assert (results[0].recall, results[0].precision) == (0.5, 0.25)
        assert (results[1].recall, results[1].precision) == (1.0, 1.0)
        assert stub.requests == [(PREDICT_BATCH_PATH, 2)]
        # the caption judge's cache key ignores the question (it is not sent)
        score(client, [JudgeItem("caption", "A dog runs.", "<answer>x</answer>", "another question")])
        assert len(stub.requests) == 1


def test_bearer_token_headers():
    with StubJudge("qwen", token="s3cret") as stub:
        client = client_for(stub.url, on_judge_error="skip")
        with pytest.raises(JudgeError, match="HTTP 401"):  # a wrong token is never skipped
            score(client, [mix("a red ball")])
        client.headers.update({"Authorization": "Bearer s3cret"})  # as versavid_r1.grpo does
        assert score(client, [mix("a red ball")])[0].output == 1.0


def test_health(fast):
    down = down_url()
    client = JudgeClient({"qwen25": [fast.url, down]}, timeout_s=2)

    async def go():
        async with client:
            return await client.health()

    report = asyncio.run(go())
    assert isinstance(report[fast.url], Health) and report[fast.url].ready
    assert isinstance(report[down], str) and "Connect" in report[down]


def test_works_from_a_daemon_thread_loop_like_trl(fast):
    """TRL 1.16 runs async reward functions on an event loop in a daemon thread
    (trl.trainer.utils.start_event_loop_in_daemon + asyncio.run_coroutine_threadsafe)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run_loop():
        asyncio.set_event_loop(loop)
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run_loop, daemon=True)
    thread.start()
    ready.wait()
    try:
        fn = make_versavid_reward(RewardConfig(qwen_judge_urls=fast.url, retries=0, timeout_s=5))
        metrics = {}
        kwargs = dict(prompts=["q"] * 2, completions=["<think>t</think><answer>a red ball</answer>"] * 2,
                      solution=[GT] * 2, problem_type=["MixVidQA"] * 2, problem=["q"] * 2,
                      log_metric=metrics.__setitem__, log_extra=lambda *a: None, trainer_state=None)
        for _ in range(3):  # several steps on the same long-lived loop
            out = asyncio.run_coroutine_threadsafe(fn(**kwargs), loop).result(timeout=10)
            assert out == [1.0, 1.0]
        assert metrics["judge/cache_hits"] == 2.0
        # the same function still works from another loop (e.g. an evaluation script)
        assert asyncio.run(fn(**kwargs)) == [1.0, 1.0]
        asyncio.run_coroutine_threadsafe(fn.client.aclose(), loop).result(timeout=10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


@pytest.mark.parametrize(
    "kwargs",
    [dict(timeout_s=0), dict(timeout_s=float("inf")), dict(on_judge_error="zero"), dict(max_concurrency=0),
     dict(retries=-1)],
)
def test_client_rejects_unbounded_or_bad_settings(kwargs):
    with pytest.raises(ValueError):
        JudgeClient({"qwen25": "http://127.0.0.1:5000"}, **kwargs)


def test_missing_judge_url_is_loud():
    client = JudgeClient({"qwen25": "http://127.0.0.1:5000"})
    with pytest.raises(JudgeError, match="no URL"):
        asyncio.run(client.score([JudgeItem("caption", "x", "y")]))


def test_judge_item_rejects_rule_scored_types():
    with pytest.raises(ValueError, match="not judge-scored"):
        JudgeItem("MCQA", "B", "B")


def test_caption_rows_send_their_precomputed_events():
    """A caption row's `events` column reaches the caption judge, so it can skip extracting them."""
    with StubJudge("caption") as stub:
        fn = make_versavid_reward(RewardConfig(caption_judge_urls=stub.url, retries=0, timeout_s=5))
        done = "<think>t</think><answer>{}</answer>"
        rewards = asyncio.run(fn(
            prompts=["q1", "q2"],
            completions=[done.format("a cat sits"), done.format("x")],
            solution=["<answer>a cat sits</answer>", "<answer>y</answer>"],
            problem_type=["caption", "caption"],
            events=[["the cat sits down", "the cat yawns"], None],
        ))
        assert rewards[0] == pytest.approx(1.5) and rewards[1] == pytest.approx(0.0)
        sent = {item.content: item.events for item in stub.items}
        assert sent == {"<answer>a cat sits</answer>": ["the cat sits down", "the cat yawns"], "<answer>x</answer>": None}
