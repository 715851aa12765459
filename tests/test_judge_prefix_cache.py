"""The transformers judge backend's prompt-prefix KV cache, on the offline tiny causal LM.

The cached path must give token-for-token the greedy replies of the plain path (single requests and
mixed batches of DarkEventInfer and MixVidQA prompts of different lengths), compute each template's
prefix once, and fall back to the plain path when no prefix is long enough or the flag is off."""
import asyncio

import httpx
import pytest

from versavid_r1.judges import QwenJudgeSettings, create_qwen_judge_app, qwen_settings_from_args
from versavid_r1.judges.backends.base import GenRequest, create_backend
from versavid_r1.judges.backends.prefix_cache import common_prefix_len
from versavid_r1.judges.prompting import judge_messages
from versavid_r1.judges.server import BackgroundServer
from versavid_r1.protocol import PREDICT_PATH
from versavid_r1.tasks import DARK_EVENT_INFER, MIX_VID_QA

NEW_TOKENS = 10


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from versavid_r1.tiny_model import build_tiny_causal_lm

    return str(build_tiny_causal_lm(tmp_path_factory.getbasetemp() / "prefix-cache-lm", seed=0))


def dei(k: int) -> list[dict]:
    return judge_messages(DARK_EVENT_INFER, "He " + "quickly " * k + "slices the bread.",
                          ["A man cuts bread.", "Someone pours milk into a glass."][k % 2])


def mix(k: int) -> list[dict]:
    return judge_messages(MIX_VID_QA, ["red", "a blue ball " * k][k % 2], "red",
                          "What colour " + "exactly " * k + "is the ball?")


PROMPTS = [dei(k) for k in range(5)] + [mix(k) for k in range(5)]


class Recorder:
    """Records the new token ids of every `generate` call and the sequence length of every model
    forward (a real forward pre-hook), so tests see what the model computed, not just the text."""

    def __init__(self, backend):
        self.rows: list[list[int]] = []
        self.forward_lengths: list[int] = []
        model, generate = backend.model, backend.model.generate

        def recording_generate(*args, **kwargs):
            out = generate(*args, **kwargs)
            self.rows += out[:, kwargs["input_ids"].shape[1]:].tolist()
            return out

        model.generate = recording_generate
        model.register_forward_pre_hook(
            lambda mod, args, kwargs: self.forward_lengths.append(kwargs["input_ids"].shape[1]),
            with_kwargs=True)


def settings(model_path: str, **over) -> QwenJudgeSettings:
    base = dict(model=model_path, backend="transformers", device="cpu", dtype="float32",
                max_batch_size=32, max_wait_ms=0.0, max_new_tokens=NEW_TOKENS)
    return QwenJudgeSettings(**{**base, **over})


def run_backend(s: QwenJudgeSettings, plan):
    """Start the real backend, record it while `plan(backend)` runs, stop it."""
    async def go():
        backend = create_backend(s)
        await backend.start()
        rec = Recorder(backend)
        try:
            texts = await plan(backend)
            return texts, rec, backend.stats.as_dict(), [backend.encode(m) for m in PROMPTS]
        finally:
            await backend.stop()
    return asyncio.run(go())


def requests(prompts) -> list[GenRequest]:
    return [GenRequest(m, max_new_tokens=NEW_TOKENS) for m in prompts]


async def singles_then_batches(backend):
    texts = [(await backend.generate(r)).text for r in requests(PROMPTS)]
    texts += [r.text for r in await backend.generate_many(requests(PROMPTS))]
    texts += [r.text for r in await backend.generate_many(requests(PROMPTS[::-1][:7]))]
    return texts


def test_cached_replies_equal_plain_replies_token_for_token(model_path):
    plain_texts, plain, plain_stats, ids = run_backend(settings(model_path, prefix_cache=False),
                                                       singles_then_batches)
    texts, cached, stats, _ = run_backend(settings(model_path), singles_then_batches)
    lengths = [len(x) for x in ids]
    assert len(set(lengths)) >= 8, f"prompts should differ in length: {lengths}"
    assert len(plain.rows) == len(cached.rows) == 10 + 10 + 7
    assert cached.rows == plain.rows and texts == plain_texts
    assert all(len(r) == NEW_TOKENS for r in cached.rows)
    # Two templates: the first prompt of each runs plain, then each template's prefix is computed
    # once (from the first two prompts: their common tokens) and every later row reuses it.
    assert stats["prefix_cache_prefills"] == 2 and stats["prefix_cache_entries"] == 2
    assert stats["prefix_cache_rows_reused"] == 27 - 2
    assert stats["prefix_cache_plain_batches"] == 2 and stats["prefix_cache_disabled"] is None
    assert "prefix_cache_prefills" not in plain_stats
    # What the model computed (prefill forwards; decode steps have length 1). Plain: whole prompts.
    # Cached: the two first prompts, the two prefixes once, then only the per-request suffixes.
    dei_p, mix_p = common_prefix_len(ids[0], ids[1]), common_prefix_len(ids[5], ids[6])
    assert dei_p > 250 and mix_p > 150
    prefix = [0, dei_p, dei_p, dei_p, dei_p, 0, mix_p, mix_p, mix_p, mix_p]
    suffix = [n - p for n, p in zip(lengths, prefix)]
    expected = ([lengths[0], dei_p] + suffix[1:5] + [lengths[5], mix_p] + suffix[6:10]
                + [max(n - p for n, p in zip(lengths, [dei_p] * 5 + [mix_p] * 5))]
                + [max(n - p for n, p in list(zip(lengths, [dei_p] * 5 + [mix_p] * 5))[::-1][:7])])
    assert [n for n in cached.forward_lengths if n > 1] == expected
    assert [n for n in plain.forward_lengths if n > 1] == lengths + [max(lengths)] * 2
    assert expected[-2] < max(lengths) / 2      # the batch's forward covers its suffixes only


def test_prefix_computed_once_per_template_over_http(model_path):
    """The service's /metrics shows one prefix prefill per template however many requests follow."""
    s = settings(model_path, max_new_tokens=4, max_wait_ms=20.0)
    with BackgroundServer(create_qwen_judge_app(s)) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        def item(i: int) -> dict:
            return {"content": f"<answer>The man {'slowly ' * i}cuts bread.</answer>",
                    "sol": f"<answer>event {i}</answer>", "problem_type": "DarkEventInfer"}

        for i in range(3):
            assert c.post(PREDICT_PATH, json=item(i)).status_code == 200

        async def burst():
            async with httpx.AsyncClient(base_url=srv.url, timeout=60) as ac:
                return await asyncio.gather(*(ac.post(PREDICT_PATH, json=item(i)) for i in range(3, 15)))

        assert all(r.status_code == 200 for r in asyncio.run(burst()))
        m = c.get("/metrics").json()
    assert m["prefix_cache_prefills"] == 1 and m["prefix_cache_entries"] == 1
    # a request arriving while a call runs preempts it: its rows resume in one more call, from the cache too
    assert m["prefix_cache_rows_reused"] == 14 + m.get("preempted", 0) and m["prefix_cache_plain_batches"] == 1
    assert m["prefix_cache_tokens_reused"] >= 14 * 300


def test_short_common_prefix_runs_the_plain_path(model_path):
    """Below --prefix-cache-min-tokens nothing is cached, and the replies are the plain ones."""
    async def plan(backend):
        return [r.text for r in await backend.generate_many(requests(PROMPTS[:3]))]

    plain_texts, plain, _, _ = run_backend(settings(model_path, prefix_cache=False), plan)
    texts, rec, stats, lengths = run_backend(settings(model_path, prefix_cache_min_tokens=1000), plan)
    assert texts == plain_texts and rec.rows == plain.rows
    assert stats["prefix_cache_prefills"] == 0 and stats["prefix_cache_plain_batches"] == 1
    assert [n for n in rec.forward_lengths if n > 1] == [max(len(x) for x in lengths[:3])]


def test_sliding_window_model_falls_back_to_the_plain_path(model_path, tmp_path):
    """A cache whose layers keep only a window cannot be reused: the backend notices on the first
    prefix, says so in its stats and serves the plain replies."""
    import json
    import shutil

    sw = tmp_path / "sliding-lm"
    shutil.copytree(model_path, sw)
    cfg = json.loads((sw / "config.json").read_text())
    cfg.update(use_sliding_window=True, sliding_window=128, max_window_layers=0,
               layer_types=["sliding_attention"] * cfg["num_hidden_layers"])
    (sw / "config.json").write_text(json.dumps(cfg))

    async def plan(backend):
        texts = [(await backend.generate(r)).text for r in requests(PROMPTS[:2])]
        return texts + [r.text for r in await backend.generate_many(requests(PROMPTS[:4]))]

    plain_texts, plain, _, _ = run_backend(settings(str(sw), prefix_cache=False), plan)
    texts, rec, stats, _ = run_backend(settings(str(sw)), plan)
    assert texts == plain_texts and rec.rows == plain.rows
    assert "sliding" in stats["prefix_cache_disabled"] and stats["prefix_cache_entries"] == 0
    assert stats["prefix_cache_prefills"] == 1 and stats["prefix_cache_rows_reused"] == 0


def test_flags():
    assert qwen_settings_from_args(["--model", "m"]).prefix_cache is True
    s = qwen_settings_from_args(["--model", "m", "--no-prefix-cache", "--prefix-cache-min-tokens", "32",
                                 "--prefix-cache-entries", "2"])
    assert (s.prefix_cache, s.prefix_cache_min_tokens, s.prefix_cache_entries) == (False, 32, 2)
    with pytest.raises(ValueError, match="prefix_cache_min_tokens"):
        qwen_settings_from_args(["--model", "m", "--prefix-cache-min-tokens", "0"])
