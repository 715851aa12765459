"""The lexical judge backend (no model: content-word coverage), served by both judge services for real on
127.0.0.1: fixed cases with hand-worked verdicts and AutoDQ recall/precision, the wire format through the
training side's own `JudgeClient`, and its settings as flags."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from versavid_r1.judges import (
    CaptionJudgeSettings, QwenJudgeSettings, caption_settings_from_args, create_caption_judge_app,
    create_qwen_judge_app, qwen_settings_from_args,
)
from versavid_r1.judges.lexical import caption_events, content_words, coverage, stem
from versavid_r1.judges.server import BackgroundServer
from versavid_r1.protocol import HEALTH_PATH, PREDICT_BATCH_PATH, PREDICT_PATH

DEI_GT = "<answer>The red square turns blue.</answer>"
MIX_Q = "In which direction does the circle move after it turns around?"


@pytest.fixture(scope="module")
def services():
    qwen = BackgroundServer(create_qwen_judge_app(QwenJudgeSettings(model="lexical", backend="lexical"))).start()
    caption = BackgroundServer(create_caption_judge_app(CaptionJudgeSettings(backend="lexical"))).start()
    yield {"qwen": qwen.url, "caption": caption.url}
    caption.stop()
    qwen.stop()


def verdicts(url: str, items: list[dict]) -> list[dict]:
    r = httpx.post(url + PREDICT_BATCH_PATH, json={"items": items}, timeout=10)
    r.raise_for_status()
    return r.json()["results"]


# --- the text analysis ------------------------------------------------------------------------------------
def test_content_words_drop_stop_words_and_meet_inflections():
    assert stem("moves") == stem("moved") == stem("moving") == stem("move") == "mov"
    assert stem("glass") == "glass" and stem("red") == "red"  # no -s off -ss, no stem under 3 letters
    assert content_words("Then the green circle turns around and moves to the left.") == {
        "green", "circl", "turn", "around", "mov", "left"}
    assert coverage("The red square turns blue.", "a red square") == 0.5  # 2 of {red, squar, turn, blu}
    assert coverage("the a of", "anything") == 0.0  # no content word: nothing to cover


# --- the Qwen2.5 judge: DarkEventInfer 0/1/2, MixVidQA True/False ------------------------------------------
def test_dark_event_infer_scores(services):
    cases = [
        ("<think>x</think><answer>A red square turned blue</answer>", 2.0),  # covers all 4 content words
        ("<answer>The red square turns.</answer>", 1.0),  # covers 3 of 4: partial
        ("<answer>A dog runs in the park.</answer>", 0.0),  # unrelated
        # every word of the ground truth inside a list of guesses: precision 4/12 < 0.6, so 0
        ("<answer>red blue green yellow purple orange square circle triangle turns appears moves</answer>", 0.0),
        ("<answer></answer>", 0.0),  # empty: scored without the backend
    ]
    results = verdicts(services["qwen"], [{"content": c, "sol": DEI_GT, "problem_type": "DarkEventInfer"}
                                          for c, _ in cases])
    assert [r["output"] for r in results] == [s for _, s in cases]
    assert [r["verdict"] for r in results] == ["2", "1", "0", "0", "empty"]
    assert results[0]["raw"] == "2"  # the backend's reply went through the service's verdict parser


def test_partial_cover_needs_the_precision_threshold(services):
    # "The red square changes colour" covers {red, squar}, 2 of 4 (>= partial 0.5), but only half of its own
    # words {red, squar, chang, colour} are in the ground truth: 0.5 < 0.6, so 0 at the default ...
    item = {"content": "<answer>The red square changes colour.</answer>", "sol": DEI_GT,
            "problem_type": "DarkEventInfer"}
    assert verdicts(services["qwen"], [item])[0]["output"] == 0.0
    # ... and 1 from a service whose precision threshold is 0.5
    loose = QwenJudgeSettings(model="lexical", backend="lexical", lexical_min_precision=0.5)
    with BackgroundServer(create_qwen_judge_app(loose)) as srv:
        assert verdicts(srv.url, [item])[0]["output"] == 1.0


def test_mixvidqa_verdicts(services):
    cases = [
        ("<answer>The circle moves to the left.</answer>", "True"),  # same meaning, question words allowed
        ("<answer>left</answer>", "True"),
        ("<answer>right</answer>", "False"),
        ("<answer>left or right</answer>", "False"),  # a hedge: precision 1/2 < 0.6
    ]
    results = verdicts(services["qwen"], [{"content": c, "sol": "<answer>left</answer>", "problem_type": "MixVidQA",
                                           "question": MIX_Q} for c, _ in cases])
    assert [r["verdict"] for r in results] == [v for _, v in cases]
    assert [r["output"] for r in results] == [1.0, 1.0, 0.0, 0.0]


def test_lexical_qwen_judge_has_no_chat_model(services):
    health = httpx.get(services["qwen"] + HEALTH_PATH).json()
    assert (health["backend"], health["ready"]) == ("lexical", True)
    r = httpx.post(services["qwen"] + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 503 and "only gives judge verdicts" in r.json()["detail"]


# --- the caption judge: AutoDQ with clause events and coverage-based entailment ---------------------------
CAPTION_GT = "A red square moves to the right. Then the red square turns blue. Finally, a green circle appears."
CAPTION_PRED = "A red square moves to the right, then it turns blue. A green circle appears. A dog barks."


def test_caption_events_are_sentences_and_clauses():
    assert caption_events(CAPTION_PRED, 10) == [
        "A red square moves to the right", "it turns blue", "A green circle appears", "A dog barks"]
    assert caption_events(CAPTION_GT, 2) == ["A red square moves to the right", "the red square turns blue"]


def test_autodq_recall_and_precision_by_hand(services):
    # Ground-truth events G1 {red, squar, mov, right}, G2 {red, squar, turn, blu}, G3 {green, circl, appear};
    # predicted P1 {red, squar, mov, right}, P2 {turn, blu}, P3 {green, circl, appear}, P4 {dog, bark}.
    # Recall: G1 <- P1 (4/4), G2: best P1 or P2 covers 2/4 < 0.75, G3 <- P3 (3/3): 2/3.
    # Precision: P1 <- G1, P2 <- G2 (2/2), P3 <- G3, P4 nothing: 3/4.
    r = httpx.post(services["caption"] + PREDICT_PATH, json={"content": f"<answer>{CAPTION_PRED}</answer>",
                                                             "sol": f"<answer>{CAPTION_GT}</answer>"}).json()
    assert r["recall"] == pytest.approx(2 / 3) and r["precision"] == pytest.approx(3 / 4)
    assert r["gt_events"] == caption_events(CAPTION_GT, 10) and r["pred_events"] == caption_events(CAPTION_PRED, 10)
    # precomputed ground-truth events are used as given
    r = httpx.post(services["caption"] + PREDICT_PATH, json={
        "content": CAPTION_PRED, "sol": CAPTION_GT, "events": ["A dog barks.", "A cat sleeps."]}).json()
    assert r["recall"] == 0.5 and r["gt_events"] == ["A dog barks.", "A cat sleeps."]
    assert httpx.get(services["caption"] + HEALTH_PATH).json()["backend"] == "lexical"


def test_judge_client_and_training_reward_through_the_lexical_services(services):
    from versavid_r1.rewards import RewardConfig, make_versavid_reward

    reward = make_versavid_reward(RewardConfig(qwen_judge_urls=services["qwen"],
                                               caption_judge_urls=services["caption"], retries=0))
    completions = [f"<think>t</think><answer>{a}</answer>" for a in
                   ("A red square turned blue", "left", CAPTION_PRED, "A dog runs in the park.")]
    metrics: dict[str, float] = {}
    got = asyncio.run(reward(
        completions=completions,
        solution=[DEI_GT, "<answer>left</answer>", f"<answer>{CAPTION_GT}</answer>", DEI_GT],
        problem_type=["DarkEventInfer", "MixVidQA", "caption", "DarkEventInfer"],
        problem=["", MIX_Q, "", ""], log_metric=metrics.__setitem__))
    # caption: recall 2/3 + 0.5 x precision 3/4 + keyword term 0.2 ("then")
    assert got == pytest.approx([2.0, 1.0, 2 / 3 + 0.375 + 0.2, 0.0])
    assert metrics["judge/failures"] == 0 and metrics["judge/skipped"] == 0 and metrics["judge/requests"] == 2


# --- settings --------------------------------------------------------------------------------------------
def test_lexical_settings_are_flags_and_checked():
    s = qwen_settings_from_args(["--backend", "lexical", "--lexical-min-precision", "0.8",
                                 "--lexical-partial-cover", "0.4"])
    assert (s.backend, s.lexical_min_precision, s.lexical_partial_cover) == ("lexical", 0.8, 0.4)
    c = caption_settings_from_args(["--backend", "lexical", "--lexical-entail-cover", "1.0"])
    assert (c.backend, c.lexical_entail_cover) == ("lexical", 1.0)
    with pytest.raises(ValueError, match="share"):
        QwenJudgeSettings(backend="lexical", lexical_min_precision=1.5).validate()
    with pytest.raises(ValueError, match="partial_cover"):
        QwenJudgeSettings(backend="lexical", lexical_partial_cover=0.9, lexical_full_cover=0.8).validate()
    with pytest.raises(SystemExit):
        caption_settings_from_args(["--backend", "vllm"])
