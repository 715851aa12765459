"""An empty caption is scored by the caption judge's AutoDQ rules, in evaluation as in training (issue 20, item 4).

DREAM-1K's rules (`--scoring official`) give a prediction without events precision 1.0 and recall 0.0; the
project's rules give 0 and 0. Both are the judge's to apply: the client sends the empty caption, real caption
judge services (lexical backend, no model needed) on 127.0.0.1 score it.
"""
from __future__ import annotations

import asyncio

import httpx
import pytest

from versavid_r1.eval.config import EvalConfig
from versavid_r1.eval.scoring import score_completions
from versavid_r1.judges import CaptionJudgeSettings, create_caption_judge_app
from versavid_r1.judges.server import BackgroundServer
from versavid_r1.rewards import JudgeClient, RewardConfig, make_versavid_reward

GT = "A man opens the door. He walks into the kitchen."
ROW = {"problem": "Describe the video.", "solution": f"<answer>{GT}</answer>", "problem_type": "caption"}
EMPTY = "<think>I watch the video.</think><answer></answer>"


@pytest.fixture(scope="module")
def caption_judges():
    servers = {mode: BackgroundServer(create_caption_judge_app(CaptionJudgeSettings(backend="lexical", scoring=mode)))
               .start() for mode in ("official", "project")}
    try:
        yield {mode: srv.url for mode, srv in servers.items()}
    finally:
        for srv in servers.values():
            srv.stop()


@pytest.mark.parametrize("mode, recall, precision", [("official", 0.0, 1.0), ("project", 0.0, 0.0)])
def test_evaluation_scores_an_empty_caption_by_the_judges_rules(caption_judges, mode, recall, precision):
    url = caption_judges[mode]
    before = httpx.get(url + "/metrics").json()
    cfg = EvalConfig(caption_judge_url=url, nframes=16, video_fps=None)
    client = JudgeClient.from_config(cfg.reward_config())

    async def go():
        async with client:
            return await score_completions([ROW, ROW], [EMPTY, f"<think>x</think><answer>{GT}</answer>"], cfg, client)

    empty, full = asyncio.run(go())
    assert (empty["status"], empty["recall"], empty["precision"], empty["f1"]) == ("ok", recall, precision, 0.0)
    assert empty["judge"]["pred_events"] == [], "the judge saw the empty caption: no predicted events"
    assert (full["recall"], full["precision"]) == (1.0, 1.0)
    after = httpx.get(url + "/metrics").json()
    if mode == "official":  # the empty caption went through the judge's scoring, not around it
        assert after.get("scored", 0) - before.get("scored", 0) == 2


@pytest.mark.parametrize("mode, reward", [("official", 0.5), ("project", 0.0)])
def test_training_scores_an_empty_caption_the_same_way(caption_judges, mode, reward):
    client = JudgeClient({"caption": caption_judges[mode]}, timeout_s=30, retries=0)
    fn = make_versavid_reward(RewardConfig(caption_judge_urls=caption_judges[mode]), client)
    out = asyncio.run(fn(completions=[EMPTY], solution=[ROW["solution"]], problem_type=["caption"],
                         problem=[ROW["problem"]]))
    assert out == [reward]  # recall + 0.5 x precision + keyword term (0 for an empty answer)
