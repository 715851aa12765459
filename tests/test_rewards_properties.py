"""Property tests (hypothesis): on arbitrary text every reward returns a finite float inside its
documented range (versavid_r1.tasks.TASK_REWARD_RANGE) and never raises."""
from __future__ import annotations

import asyncio
import math
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from versavid_r1 import prompts, tasks
from versavid_r1.protocol import CaptionResult, JudgeResult
from versavid_r1.rewards import (
    KEYWORD_MAX,
    KEYWORD_MIN,
    JudgeClient,
    RewardConfig,
    caption_reward,
    extract_answer,
    format_reward,
    keyword_reward,
    make_versavid_reward,
    multiple_choice_reward,
)

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text made of the pieces that matter (tags, option letters, delimiters, phrases, math) plus noise.
TOKENS = [
    "<think>", "</think>", "<answer>", "</answer>", "<Answer>", " ", "\n", "A", "B", "C", "G", "a", "b",
    ".", ")", "(", "{", "}", "\\boxed{", "or", "and", ",", "/", "The answer is ", "3", "0.5", "\\frac{1}{2}",
    "^", "!", "$", "*", "9^{9^{9}}", "man", "then", "might", "first", "maybe",
    *prompts.TEMPORAL_PHRASES[:8], *prompts.HEDGE_PHRASES[:8],
]
structured = st.lists(st.sampled_from(TOKENS), max_size=25).map("".join)
texts = st.one_of(st.text(max_size=200), structured)
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def in_range(value, problem_type):
    lo, hi = tasks.TASK_REWARD_RANGE[problem_type]
    return isinstance(value, float) and math.isfinite(value) and lo <= value <= hi


@PROPS
@given(texts)
def test_format_reward_is_zero_or_one(text):
    for mode in ("strict", "prefix"):
        (value,) = format_reward([text], format_mode=mode)
        assert value in (0.0, 1.0)
    # strict implies prefix
    assert format_reward([text], format_mode="strict")[0] <= format_reward([text], format_mode="prefix")[0]


@PROPS
@given(texts)
def test_extract_answer_is_a_stripped_substring(text):
    answer = extract_answer(text)
    assert answer == answer.strip() and answer in text


@PROPS
@given(texts, texts)
def test_multiple_choice_reward_is_zero_or_one(completion, solution):
    value = multiple_choice_reward(completion, solution)
    assert value in (0.0, 1.0) and in_range(value, tasks.MCQA)


@PROPS
@given(st.sampled_from("ABCDEFG"), st.sampled_from(["{}", "{}.", "({})", "\\boxed{{{}}}", "{}. some text", "Answer: {}"]))
def test_multiple_choice_letter_forms_match_their_letter(letter, form):
    completion = f"<think>t</think><answer>{form.format(letter)}</answer>"
    assert multiple_choice_reward(completion, letter) == 1.0
    other = "B" if letter != "B" else "C"
    assert multiple_choice_reward(completion, other) == 0.0


@PROPS
@given(texts)
def test_keyword_reward_range(text):
    for completion in (text, f"<answer>{text}</answer>"):
        value = keyword_reward(completion)
        assert isinstance(value, float) and math.isfinite(value)
        assert KEYWORD_MIN - 1e-9 <= value <= KEYWORD_MAX


@PROPS
@given(st.lists(st.sampled_from(prompts.TEMPORAL_PHRASES + prompts.HEDGE_PHRASES), max_size=12), st.text(max_size=20))
def test_keyword_reward_closed_form(phrases, noise):
    # The clamp-then-subtract rule is equivalent to: any hedge → −0.2 per hedge phrase present;
    # otherwise +0.2 per temporal phrase present, capped at 0.4.
    completion = "<answer>" + " ".join(phrases) + " " + noise + "</answer>"
    text = extract_answer(completion).lower()
    n_temporal = sum(p in text for p in prompts.TEMPORAL_PHRASES)
    n_hedge = sum(p in text for p in prompts.HEDGE_PHRASES)
    if not text:
        expected = 0.0
    elif n_hedge:
        expected = -prompts.HEDGE_PENALTY * n_hedge
    else:
        expected = min(prompts.TEMPORAL_BONUS * n_temporal, prompts.KEYWORD_CAP)
    assert abs(keyword_reward(completion) - expected) < 1e-9


@PROPS
@given(texts, unit, unit)
def test_caption_reward_range(text, recall, precision):
    value = caption_reward(text, recall, precision)
    assert in_range(value, tasks.CAPTION)
    assert value >= KEYWORD_MIN - 1e-9


class RandomJudge(JudgeClient):
    """A JudgeClient whose judge answers random valid verdicts (no HTTP)."""

    def __init__(self, seed):
        super().__init__({"qwen25": "http://127.0.0.1:1", "caption": "http://127.0.0.1:1"})
        self.rng = random.Random(seed)

    async def score(self, items, errors=None):
        out = []
        for item in items:
            if item.problem_type == tasks.CAPTION:
                out.append(CaptionResult(recall=self.rng.random(), precision=self.rng.random()))
            else:
                hi = tasks.TASK_REWARD_RANGE[item.problem_type][1]
                out.append(JudgeResult(output=float(self.rng.randint(0, int(hi)))))
        return out


@PROPS
@given(
    st.lists(st.tuples(st.sampled_from(tasks.PROBLEM_TYPES), texts, texts), min_size=1, max_size=6),
    st.integers(0, 2**16),
    st.sampled_from(["gate", "sum"]),
)
def test_versavid_reward_range_on_arbitrary_text(rows, seed, composition):
    cfg = RewardConfig(composition=composition)
    fn = make_versavid_reward(cfg, client=RandomJudge(seed))
    completions = [c for _, c, _ in rows]
    # completions that also pass the gate, so the task reward is exercised
    completions += [f"<think>x</think><answer>{c}</answer>" for _, c, _ in rows]
    rows = rows + rows
    out = asyncio.run(fn(
        prompts=["q"] * len(rows), completions=completions, solution=[s for _, _, s in rows],
        problem_type=[t for t, _, _ in rows], problem=["q"] * len(rows),
    ))
    assert len(out) == len(rows)
    for (ptype, _, _), value in zip(rows, out):
        assert isinstance(value, float) and math.isfinite(value)
        if composition == "gate":
            assert in_range(value, ptype)
        else:  # format_weight·{0,1} + task_weight·task
            lo, hi = tasks.TASK_REWARD_RANGE[ptype]
            assert lo <= value <= hi + cfg.format_weight
