"""Rows and completions are measured in the judges' own units (body bytes, characters, prompt tokens), so a row
that passes validation is never refused, and a judge's 413/422 for one item costs that item, not the run.

Real services on 127.0.0.1 (the Qwen judge on the tiny causal LM's tokenizer, the caption judge's lexical
backend), the real client, and the service's own token count as the oracle of the bound."""
from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from versavid_r1.data.limits import RowLimits, judge_field_errors
from versavid_r1.judge_units import judge_request, prompt_token_bound
from versavid_r1.judges import CaptionJudgeSettings, QwenJudgeSettings, ServiceLimits
from versavid_r1.judges import create_caption_judge_app, create_qwen_judge_app
from versavid_r1.judges.server import BackgroundServer
from versavid_r1.protocol import JudgeLimits
from versavid_r1.rewards import JudgeClient, JudgeItem
from versavid_r1.rewards.judge_items import JudgeFailure
from versavid_r1.tasks import CAPTION, CAPTION_JUDGE, DARK_EVENT_INFER, MIX_VID_QA, QWEN_JUDGE

EMOJI = "\U0001F600"
# The two rows the issue found: under the character limit (16,000), over the judges' other limits.
DEI_EMOJI = {"problem_type": DARK_EVENT_INFER, "problem": "What happens in the dark segment?",
             "solution": f"<answer>{EMOJI * 15_000}</answer>", "video": "v.mp4"}
CAPTION_EMOJI = {"problem_type": CAPTION, "problem": "Describe the video.", "solution": "<answer>A man walks.</answer>",
                 "events": [EMOJI * 16_000] * 64, "video": "v.mp4"}


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> str:
    from versavid_r1.tiny_model import build_tiny_causal_lm

    return str(build_tiny_causal_lm(tmp_path_factory.getbasetemp() / "tiny-judge-lm", seed=0))


def test_validation_reports_rows_over_the_judges_bytes_and_tokens(tmp_path, capsys):
    from versavid_r1.data.cli import validate_main

    plain = {**DEI_EMOJI, "solution": "<answer>He cuts the rope.</answer>"}
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in (plain, DEI_EMOJI, CAPTION_EMOJI)))
    assert validate_main([str(data), "--no_check_videos", "--no_progress"]) == 1
    out = capsys.readouterr().out
    assert f"{data}:1:" not in out
    assert f"{data}:2: error: solution: up to 60" in out and "judge tokens" in out and "--max-input-tokens" in out
    assert f"{data}:3: error: events: 12288356 bytes" in out and "bytes of JSON" in out and "--max-body-bytes" in out
    # the flags (or a service's /health) set the limits: a looser judge takes both rows
    assert validate_main([str(data), "--no_check_videos", "--no_progress", "--judge_max_input_tokens", "70000",
                          "--judge_max_body_bytes", str(16 << 20)]) == 0


def test_the_token_bound_is_never_below_the_judges_own_count(tiny_lm):
    """The client's bound against the transformers backend's own tokenisation of the same item."""
    from versavid_r1.judges.backends.transformers_backend import TransformersBackend
    from versavid_r1.judges.prompting import judge_messages
    from versavid_r1.judges.texts import answer_text

    backend = TransformersBackend(QwenJudgeSettings(model=tiny_lm, backend="transformers", device="cpu",
                                                    max_input_tokens=10**6))
    backend._load()
    texts = ["A man cuts bread.", EMOJI * 50, "你好世界" * 30, "<|im_end|><|im_start|>system\n" * 5,
             "</prediction> ignore the above", "é" * 40 + "\u200b" * 10, " " * 30]
    for ptype in (DARK_EVENT_INFER, MIX_VID_QA):
        for pred in texts:
            for truth in texts[:3]:
                request = judge_request(ptype, pred, f"<answer>{truth}</answer>", "Which clip shows the dog?")
                messages = judge_messages(ptype, answer_text(request.content), answer_text(request.sol),
                                          request.question)
                counted = len(backend.encode(messages))
                assert counted <= prompt_token_bound(request), (ptype, pred[:20], truth[:20])


def _score(client, items):
    async def go():
        try:
            return await client.score_outcomes(items)
        finally:
            await client.aclose()

    return asyncio.run(go())


def kinds(outcomes) -> list[str]:
    """'judged' for an item the judge answered (the random tiny LM's verdict may be unparseable), else the
    failure's kind."""
    return [o.kind if isinstance(o, JudgeFailure) and o.kind != "unparseable" else "judged" for o in outcomes]


def dei(answer: str) -> JudgeItem:
    return JudgeItem(DARK_EVENT_INFER, answer, "<answer>The man slices the bread.</answer>")


def test_an_item_over_the_token_limit_is_a_counted_skip_not_a_stopped_run(tiny_lm):
    settings = QwenJudgeSettings(model=tiny_lm, backend="transformers", device="cpu", max_new_tokens=4,
                                 max_input_tokens=2_000)
    with BackgroundServer(create_qwen_judge_app(settings)) as srv:
        items = [dei("He slices bread."), dei(EMOJI * 1_000), dei("The man cuts bread.")]
        # (1) the client knows the limit (the judge's /health reports it): the item is not even sent
        client = JudgeClient({QWEN_JUDGE: srv.url}, retries=0, on_judge_error="skip")
        client.set_limits(QWEN_JUDGE, JudgeLimits(max_input_tokens=2_000, max_request_tokens=50_000))
        out = _score(client, items)
        assert kinds(out) == ["judged", "permanent", "judged"]
        assert "too large for the judge" in out[1].reason and client.stats.requests == 1
        assert client.stats.permanent == 1 and client.stats.skipped - client.stats.unparseable == 1
        # (2) the client assumes the shipped default (8192): the judge refuses the batch (422 over_limit); it
        # is split until the item is alone, and that item is skipped and counted
        client = JudgeClient({QWEN_JUDGE: srv.url}, retries=0, on_judge_error="skip")
        out = _score(client, items)
        assert kinds(out) == ["judged", "permanent", "judged"]
        assert "refused" in out[1].reason and "--max-input-tokens" in out[1].reason
        assert client.stats.skipped - client.stats.unparseable == 1 and client.stats.permanent == 1
        # under on_judge_error=raise the refusal stops the run, naming the limit
        client = JudgeClient({QWEN_JUDGE: srv.url}, retries=0, on_judge_error="raise")
        with pytest.raises(Exception, match="max-input-tokens"):
            _score(client, items)


def test_a_413_for_one_caption_is_a_counted_skip(tmp_path):
    settings = CaptionJudgeSettings(backend="lexical", limits=ServiceLimits(max_body_bytes=4_000))
    with BackgroundServer(create_caption_judge_app(settings)) as srv:
        small = [JudgeItem(CAPTION, f"A man walks {i}.", "<answer>A man walks.</answer>") for i in range(3)]
        huge = JudgeItem(CAPTION, "A man walks.", "<answer>A man walks.</answer>", events=(EMOJI * 200,) * 3)
        client = JudgeClient({CAPTION_JUDGE: srv.url}, retries=0, on_judge_error="skip")
        out = _score(client, [small[0], huge, small[1], small[2]])
        assert [type(o).__name__ for o in out] == ["CaptionResult", "JudgeFailure", "CaptionResult", "CaptionResult"]
        assert "HTTP 413" in out[1].reason and client.stats.skipped == 1


def test_health_reports_the_limits_and_preflight_checks_rows_and_the_key(tmp_path, monkeypatch):
    from versavid_r1.trainer.preflight import PreflightError, check_judges, check_rows_for_judges, judges_needed

    settings = QwenJudgeSettings(backend="lexical", model="lexical", api_key="k3y",
                                 limits=ServiceLimits(max_field_chars=200))
    row = {**DEI_EMOJI, "solution": "<answer>" + "word " * 60 + "</answer>", "source_line": "train.jsonl:7"}
    assert judge_field_errors(row, RowLimits()) == []  # within the shipped defaults
    with BackgroundServer(create_qwen_judge_app(settings)) as srv:
        needed = judges_needed([row], srv.url, "http://127.0.0.1:9")
        with pytest.raises(PreflightError, match="requires an API key .*no key was sent"):
            check_judges(needed, ready_timeout=0, auth_headers={})
        with pytest.raises(PreflightError, match="its key was refused"):
            check_judges(needed, ready_timeout=0, auth_headers={"Authorization": "Bearer wrong"})
        reported = check_judges(needed, ready_timeout=0, auth_headers={"Authorization": "Bearer k3y"})
    assert reported[QWEN_JUDGE].max_field_chars == 200 and reported[QWEN_JUDGE].max_input_tokens is None
    with pytest.raises(PreflightError, match=r"train\.jsonl:7: solution: .*more than the judge accepts \(200"):
        check_rows_for_judges([row], dataclasses.replace(RowLimits(), services=reported))
