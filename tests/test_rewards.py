"""Table-driven tests of the reward functions (docs/method.md, "Rewards") and of versavid_reward end to end
against real HTTP judge stubs on 127.0.0.1."""
from __future__ import annotations

import asyncio
import inspect
import math
import threading
import time

import pytest

from judge_stub_server import StubJudge, down_url
from versavid_r1 import prompts, tasks
from versavid_r1.rewards import (
    CAPTION_MAX,
    JudgeClient,
    JudgeError,
    RewardConfig,
    caption_reward,
    extract_answer,
    format_ok,
    format_reward,
    keyword_reward,
    make_versavid_reward,
    multiple_choice_reward,
    option_letters,
    symbolic_equal,
    versavid_reward,
)
from versavid_r1.rewards.mcqa import _DaemonWorker

GOOD = "<think>reasoning</think><answer>{}</answer>"


def good(answer: str) -> str:
    return GOOD.format(answer)


# --- extract_answer ------------------------------------------------------------------------------
EXTRACT_CASES = [
    ("<answer>B</answer>", "B"),
    ("<think>x</think><answer> B </answer>", "B"),
    ("<answer>B", "B"),  # closing tag optional
    ("no tags at all", ""),
    ("", ""),
    ("<answer>A</answer><answer>B</answer>", "A"),  # the first answer
    ("<answer>\n multi \n line \n</answer>", "multi \n line"),
    ("<answer></answer>", ""),
    ("</answer>B<answer>C</answer>", "C"),
    ("<answer><answer>B</answer>", "<answer>B"),  # nested: up to the first closing tag
    ("<Answer>B</Answer>", ""),  # tags are case-sensitive
    (None, ""),
]


@pytest.mark.parametrize("text,expected", EXTRACT_CASES)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


# --- format gate ---------------------------------------------------------------------------------
# (completion, strict, prefix)
FORMAT_CASES = [
    ("<think>a</think><answer>b</answer>", 1.0, 1.0),
    ("<think>a</think>\n\n<answer>b</answer>", 1.0, 1.0),
    ("<think>a</think><answer>b</answer>\n", 1.0, 1.0),  # trailing whitespace tolerated
    ("<think>a</think><answer>b</answer> extra", 0.0, 1.0),  # text after </answer>
    (" <think>a</think><answer>b</answer>", 0.0, 0.0),  # must start at the first character
    ("<think>a</think>", 0.0, 0.0),
    ("<answer>b</answer>", 0.0, 0.0),
    ("<think>a</think><answer>b", 0.0, 0.0),  # unclosed answer
    ("<think>a<answer>b</answer>", 0.0, 0.0),  # unclosed think
    ("<think>\nmulti\nline\n</think>\n<answer>\nB\n</answer>", 1.0, 1.0),
    ("<think></think><answer></answer>", 1.0, 1.0),  # empty blocks pass the gate (answer scores 0)
    ("<think>a</think><answer>b</answer><answer>c</answer>", 0.0, 1.0),  # repeated answer
    ("<think>a<think>b</think></think><answer>c</answer>", 0.0, 1.0),  # nested think
    ("<think>a</think>text<answer>b</answer>", 0.0, 0.0),
    ("<THINK>a</THINK><ANSWER>b</ANSWER>", 0.0, 0.0),  # case-sensitive
    ("<think>a</think><answer>b</answer><think>c</think>", 0.0, 1.0),
    ("<answer>b</answer><think>a</think>", 0.0, 0.0),
    ("<think>a</think> <answer>b <answer> c</answer>", 0.0, 1.0),  # tag inside the answer
    ("", 0.0, 0.0),
]


@pytest.mark.parametrize("completion,strict,prefix", FORMAT_CASES)
def test_format_gate(completion, strict, prefix):
    assert format_reward([completion]) == [strict]
    assert format_reward([completion], format_mode="strict") == [strict]
    assert format_reward([completion], format_mode="prefix") == [prefix]
    assert format_ok(completion, "strict") is bool(strict)


@pytest.mark.parametrize(
    "completion,expected",
    [
        ([{"role": "assistant", "content": "<think>a</think><answer>b</answer>"}], 1.0),
        ([{"role": "assistant", "content": [{"type": "text", "text": "<think>a</think><answer>b</answer>"}]}], 1.0),
        ([{"role": "assistant", "content": "<answer>b</answer>"}], 0.0),
        ([], 0.0),
        (None, 0.0),
    ],
)
def test_format_reward_conversational(completion, expected):
    assert format_reward([completion], prompts=["p"], solution=["x"]) == [expected]


def test_format_reward_rejects_unknown_mode():
    with pytest.raises(ValueError, match="format mode"):
        format_reward(["x"], format_mode="loose")


# --- multiple choice -----------------------------------------------------------------------------
MCQA_CASES = [
    # accepted option forms
    ("B", "B", 1.0),
    ("<answer>B</answer>", "<answer>B</answer>", 1.0),
    (good("B."), "B", 1.0),
    (good("B)"), "B", 1.0),
    (good("(B)"), "B", 1.0),
    (good("{B}"), "B", 1.0),
    (good("\\boxed{B}"), "B", 1.0),
    (good("$\\boxed{B}$"), "B", 1.0),
    (good("B. The man opens the door"), "B", 1.0),
    (good("b. the man opens the door"), "B", 1.0),
    (good("b"), "<answer>B</answer>", 1.0),
    (good("(b)"), "B", 1.0),
    (good("The answer is B."), "B", 1.0),
    (good("Answer: B"), "B", 1.0),
    (good("Option B"), "B", 1.0),
    (good("**B**"), "B", 1.0),
    (good("\n  B  \n"), "B", 1.0),
    ("<answer>B", "B", 1.0),  # unclosed answer tag
    (good("G"), "G", 1.0),
    # wrong letters
    (good("C"), "B", 0.0),
    (good("c. text"), "B", 0.0),
    # two letters: hedging gets no credit, even if one is right
    (good("B or C"), "B", 0.0),
    (good("B, C"), "B", 0.0),
    (good("B and C"), "B", 0.0),
    (good("B/C"), "B", 0.0),
    (good("(B) (C)"), "B", 0.0),
    (good("\\boxed{B} or \\boxed{C}"), "B", 0.0),
    (good("B. first option\nC. second option"), "B", 0.0),
    (good("B or B"), "B", 1.0),  # the same letter twice is one letter
    # hedges docs/rewards.md promises get 0 (issue 11 part 4: these were paid)
    (good("B or C?"), "B", 0.0),
    (good("B; C"), "B", 0.0),
    (good("B or maybe A"), "B", 0.0),
    (good("C and B are both possible"), "C", 0.0),
    (good("B, or possibly C"), "B", 0.0),
    (good("Either B or C"), "B", 0.0),
    (good("The answer is either B or C."), "B", 0.0),
    (good("B vs C"), "B", 0.0),
    (good("B (or C)"), "B", 0.0),
    (good("B. The man opens the door, but C is also possible"), "B", 0.0),
    (good("B? C?"), "B", 0.0),
    (good("B, perhaps D"), "B", 0.0),
    # honest forms still pay
    (good("B. The man opens the door or the window"), "B", 1.0),
    (good("B. A man or a woman enters"), "B", 1.0),
    (good("B. A is not correct because the man leaves"), "B", 0.0),  # names A too (issue 20)
    (good("B?"), "B", 1.0),
    # words are not letters
    (good("B. A man opens the door"), "B", 1.0),
    (good("A man opens the door"), "A", 0.0),
    (good("Because"), "B", 0.0),
    (good("A"), "A. A man opens the door", 1.0),
    (good("B"), "B. The man", 1.0),
    # empty answer / solution
    (good(""), "B", 0.0),
    ("", "B", 0.0),
    (good("B"), "", 0.0),
    # symbolic equality (math-verify)
    (good("0.5"), "\\frac{1}{2}", 1.0),
    (good("3"), "3.0", 1.0),
    (good("4"), "3", 0.0),
    (good("B. 3 dogs"), "A. 3 dogs", 0.0),  # letters decide when both name one
    (good("yes"), "Yes", 1.0),  # plain text equality
    (good("9^{9^{9^9}}"), "2", 0.0),  # not sent to sympy: no hang
    # only the first <answer> counts; <think> is ignored
    ("<think>It is B or C</think><answer>B</answer>", "B", 1.0),
    ("<think>x</think><answer>B</answer><answer>C</answer>", "C", 0.0),
]


@pytest.mark.parametrize("completion,solution,expected", MCQA_CASES)
def test_multiple_choice_reward(completion, solution, expected):
    assert multiple_choice_reward(completion, solution) == expected


@pytest.mark.parametrize(
    "answer,letters",
    [("B", {"B"}), ("B or C", {"B", "C"}), ("A man walks", set()), ("(A) x (D)", {"A", "D"}), ("", set()),
     ("C and B are both possible", {"B", "C"}), ("B or maybe A", {"A", "B"}), ("B; C", {"B", "C"}),
     ("B. text containing the word or", {"B"}), ("\\boxed{B}", {"B"}), ("The answer is B", {"B"})],
)
def test_option_letters(answer, letters):
    assert option_letters(answer) == letters


def test_multiple_choice_reward_is_fast_on_explosive_input(monkeypatch):
    """Inputs that could make sympy run unboundedly are never handed to math-verify (counted, not timed)."""
    from versavid_r1.rewards import mcqa

    sent = []
    monkeypatch.setattr(mcqa._WORKER, "run", lambda fn, timeout: sent.append(fn) or (True, False))
    assert multiple_choice_reward(good("99999999999^99999999999"), "2") == 0.0
    assert multiple_choice_reward(good("10!!!!!!"), "2") == 0.0
    assert sent == []
    assert multiple_choice_reward(good("0.5"), "\\frac{1}{2}") == 0.0 and len(sent) == 1  # the spy sees calls


def test_multiple_choice_reward_works_off_the_main_thread():
    # TRL calls async rewards from a daemon thread: math-verify's signal timeouts would fail there.
    out = []
    t = threading.Thread(target=lambda: out.append(
        (multiple_choice_reward(good("0.5"), "\\frac{1}{2}"), multiple_choice_reward(good("b."), "B"))))
    t.start()
    t.join(timeout=30)
    assert out == [(1.0, 1.0)]


def test_math_verify_worker_abandons_slow_calls():
    # A stuck call blocks until the test ends; a worker that waited for it would take the whole 60 s.
    worker = _DaemonWorker(max_abandoned=2)
    stuck = threading.Event()
    try:
        assert worker.run(lambda: 41 + 1, timeout=5) == (True, 42)
        t0 = time.perf_counter()
        assert worker.run(lambda: stuck.wait(60), timeout=0.05) == (False, None)
        assert time.perf_counter() - t0 < 30
        assert worker.run(lambda: "fresh worker", timeout=5) == (True, "fresh worker")
        assert worker.run(lambda: stuck.wait(60), timeout=0.05) == (False, None)
        assert worker.run(lambda: 1, timeout=5) == (False, None)  # gave up after 2 stuck calls
    finally:
        stuck.set()


def test_math_verify_errors_count_as_not_equal():
    def boom():
        raise RuntimeError("sympy exploded")

    finished, exc = _DaemonWorker().run(boom, timeout=5)
    assert not finished and isinstance(exc, RuntimeError)
    assert symbolic_equal("1", "1") is True and symbolic_equal("1", "2") is False
    assert symbolic_equal("x" * 200, "x" * 200) is False  # too long for math-verify


# --- keyword term and caption reward -------------------------------------------------------------
KEYWORD_CASES = [
    ("The man walks.", 0.0),
    ("First he runs.", 0.2),
    ("First he runs, then he jumps.", 0.4),
    ("First he runs, then he jumps, finally he sits.", 0.4),  # 0.6 capped at 0.4
    ("He runs first and second and third and then next.", 0.4),  # 1.0 capped
    ("He might run.", -0.2),  # clamp 0 → 0, then −0.2
    ("First he runs, then he might jump.", -0.2),  # +0.4, clamp to 0, −0.2
    ("He might possibly run.", -0.4),  # no lower bound
    ("He might perhaps possibly run.", -0.6),
    ("FIRST HE RUNS", 0.2),  # case-insensitive
    ("It is authentic.", 0.2),  # substring: "then" in "authentic"
    ("The mayor speaks.", -0.2),  # substring: "may" in "mayor"
    ("first first first", 0.2),  # each phrase counts once
    ("Perhaps he runs; afterwards he sits.", -0.2),  # order in the text does not matter
    ("Meanwhile, the dog barks.", 0.2),
    ("It is unclear.", -0.2),
    ("A woman slices an onion and later fries it; she could add salt.", -0.2),
    ("Initially the dog sits; subsequently it stands up.", 0.4),
    ("He likely runs when the bell rings.", -0.2),
    ("They sometimes run and rarely walk.", -0.4),
    ("Everything is open to interpretation.", -0.2),
    ("Next, the man kicks the ball.", 0.2),
]


@pytest.mark.parametrize("answer,expected", KEYWORD_CASES)
def test_keyword_reward(answer, expected):
    assert keyword_reward(good(answer)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "completion,expected",
    [
        ("<answer></answer>", 0.0),
        ("<answer>   </answer>", 0.0),
        ("first then might, but no answer tag", 0.0),
        ("<think>first then might</think><answer>He runs.</answer>", 0.0),  # only the answer counts
        ("<answer>He runs.</answer><answer>first</answer>", 0.0),  # only the first answer
        ("<answer>then he sits", 0.2),  # closing tag optional
        (None, 0.0),
    ],
)
def test_keyword_reward_reads_only_the_answer(completion, expected):
    assert keyword_reward(completion) == pytest.approx(expected)


CAPTION_CASES = [
    (1.0, 1.0, "He runs.", 1.5),
    (1.0, 1.0, "First he runs, then he jumps.", 1.9),
    (0.0, 0.0, "He might run.", -0.2),
    (0.5, 0.4, "First he runs.", 0.9),
    (0.25, 1.0, "He runs.", 0.75),
    (0.0, 1.0, "First he runs, then he might jump.", 0.3),
]


@pytest.mark.parametrize("recall,precision,answer,expected", CAPTION_CASES)
def test_caption_reward(recall, precision, answer, expected):
    value = caption_reward(good(answer), recall, precision)
    assert value == pytest.approx(expected)
    assert value <= CAPTION_MAX


@pytest.mark.parametrize("recall,precision", [(1.5, 0.0), (0.0, -0.1), (float("nan"), 0.0), (0.0, float("inf")), ("1", 0)])
def test_caption_reward_rejects_bad_judge_values(recall, precision):
    with pytest.raises(ValueError):
        caption_reward(good("x"), recall, precision)


def test_keyword_lists_are_the_shared_data():
    # The lists live in versavid_r1.prompts only; docs/method.md's counts.
    assert len(prompts.TEMPORAL_PHRASES) == 29 and len(prompts.HEDGE_PHRASES) == 38
    assert CAPTION_MAX == pytest.approx(tasks.TASK_REWARD_RANGE[tasks.CAPTION][1])


# --- versavid_reward end to end (real HTTP stubs) ------------------------------------------------
@pytest.fixture(scope="module")
def judges():
    qwen = StubJudge("qwen", scores={"partly right": 1.0})
    cap = StubJudge("caption", caption_scores={"a dog runs, then it jumps.": (0.6, 0.4), "a dog runs.": (0.5, 1.0)})
    with qwen, cap:
        yield qwen, cap


def make_reward(judges, **overrides):
    qwen, cap = judges
    cfg = RewardConfig(
        qwen_judge_urls=[qwen.url], caption_judge_urls=cap.url, timeout_s=5, retries=0, **overrides
    )
    return make_versavid_reward(cfg)


def run_reward(fn, **kwargs):
    async def go():
        try:
            return await fn(**kwargs)
        finally:
            await fn.client.aclose()

    return asyncio.run(go())


DEI_GT = "<answer>The man adds salt to the pot.</answer>"
MIX_GT = "<answer>a red ball</answer>"
CAP_GT = "<answer>A dog runs and jumps over a fence.</answer>"
# (problem_type, completion, solution, gate reward, format, task reward)
GATE_CASES = [
    ("MCQA", good("B"), "<answer>B</answer>", 1.0, 1.0, 1.0),
    ("MCQA", "<answer>B</answer>", "<answer>B</answer>", 0.0, 0.0, None),
    ("MCQA", good("C"), "<answer>B</answer>", 0.0, 1.0, 0.0),
    ("MCQA", good("B or C"), "<answer>B</answer>", 0.0, 1.0, 0.0),
    ("DarkEventInfer", good("The man adds salt to the pot."), DEI_GT, 2.0, 1.0, 2.0),
    ("DarkEventInfer", good("partly right"), DEI_GT, 1.0, 1.0, 1.0),
    ("DarkEventInfer", good("something else"), DEI_GT, 0.0, 1.0, 0.0),
    ("DarkEventInfer", "The man adds salt to the pot.", DEI_GT, 0.0, 0.0, None),
    ("MixVidQA", good("a red ball"), MIX_GT, 1.0, 1.0, 1.0),
    ("MixVidQA", good("a blue cube"), MIX_GT, 0.0, 1.0, 0.0),
    ("MixVidQA", good(""), MIX_GT, 0.0, 1.0, 0.0),
    ("caption", good("A dog runs, then it jumps."), CAP_GT, pytest.approx(0.6 + 0.2 + 0.2), 1.0, pytest.approx(1.0)),
    ("caption", good("A dog runs."), CAP_GT, pytest.approx(1.0), 1.0, pytest.approx(1.0)),
    ("caption", "<answer>A dog runs.</answer>", CAP_GT, 0.0, 0.0, None),
    ("caption", good(""), CAP_GT, 0.0, 1.0, 0.0),
]


@pytest.mark.parametrize("ptype,completion,solution,reward,fmt,task", GATE_CASES)
def test_versavid_reward_gate_times_task(judges, ptype, completion, solution, reward, fmt, task):
    fn = make_reward(judges)
    extra = {}
    out = run_reward(
        fn, prompts=["q"], completions=[completion], solution=[solution], problem_type=[ptype], problem=["q"],
        log_extra=lambda col, vals: extra.__setitem__(col, vals),
    )
    assert out == [reward]
    assert extra["format"] == [fmt]
    assert extra["task_reward"] == [task]


def test_versavid_reward_batch_mixes_types_and_skips_needless_judge_calls(judges):
    qwen, cap = judges
    qwen.reset()
    cap.reset()
    fn = make_reward(judges)
    rows = [(c[0], c[1], c[2], c[3]) for c in GATE_CASES]
    metrics: dict[str, list[float]] = {}
    out = run_reward(
        fn,
        prompts=["q"] * len(rows),
        completions=[r[1] for r in rows],
        solution=[r[2] for r in rows],
        problem_type=[r[0] for r in rows],
        problem=["q"] * len(rows),
        log_metric=lambda name, value: metrics.setdefault(name, []).append(value),
    )
    assert out == [r[3] for r in rows]
    # judged rows with the format and a non-empty answer on the qwen judge; every caption with the format, the
    # empty one included (the caption judge's AutoDQ rules score it, issue 20).
    assert sum(n for _, n in qwen.requests) == 5
    assert sum(n for _, n in cap.requests) == 3
    assert metrics["rewards/format/mean"] == [pytest.approx(12 / 15)]
    assert metrics["rewards/MCQA/mean"] == [pytest.approx(0.25)]
    assert metrics["rewards/DarkEventInfer/mean"] == [pytest.approx(3 / 4)]
    assert metrics["rewards/MixVidQA/task_mean"] == [pytest.approx(1 / 3)]
    assert metrics["rewards/caption/format"] == [pytest.approx(3 / 4)]
    assert metrics["judge/calls"] == [8.0]
    assert metrics["judge/failures"] == [0.0]
    assert metrics["judge/cache_hits"] == [0.0]
    assert metrics["judge/latency_mean_s"][0] > 0
    for name in ("judge/retries", "judge/skipped", "judge/requests", "judge/latency_max_s"):
        assert name in metrics


def test_versavid_reward_sends_each_rows_own_question(judges):
    qwen, _ = judges
    qwen.reset()
    fn = make_reward(judges)
    questions = [f"What does person {i} hold?" for i in range(4)]
    run_reward(
        fn, prompts=["p"] * 4, completions=[good(f"thing {i}") for i in range(4)], solution=[MIX_GT] * 4,
        problem_type=["MixVidQA"] * 4, problem=questions,
    )
    assert sorted(item.question for item in qwen.items) == sorted(questions)


def test_versavid_reward_reads_the_question_from_the_prompt_without_problem_column(judges):
    qwen, _ = judges
    qwen.reset()
    fn = make_reward(judges)
    prompt = [{"role": "user", "content": [{"type": "video", "video": "v.mp4"},
                                           {"type": "text", "text": "Who holds the cup? " + prompts.THINK_ANSWER_INSTRUCTION}]}]
    run_reward(fn, prompts=[prompt], completions=[good("a man")], solution=[MIX_GT], problem_type=["MixVidQA"])
    assert [item.question for item in qwen.items] == ["Who holds the cup?"]


def test_versavid_reward_sum_composition(judges):
    fn = make_reward(judges, composition="sum", format_weight=0.5, task_weight=2.0)
    out = run_reward(
        fn, prompts=["q"] * 3,
        completions=["<answer>B</answer>", good("C"), "<answer>The man adds salt to the pot.</answer>"],
        solution=["B", "B", DEI_GT], problem_type=["MCQA", "MCQA", "DarkEventInfer"], problem=["q"] * 3,
    )
    assert out == [pytest.approx(2.0), pytest.approx(0.5), pytest.approx(4.0)]


def test_versavid_reward_repeats_cost_one_call(judges):
    qwen, _ = judges
    qwen.reset()
    fn = make_reward(judges)
    out = run_reward(
        fn, prompts=["q"] * 8, completions=[good("a red ball")] * 6 + [good("a blue cube")] * 2,
        solution=[MIX_GT] * 8, problem_type=["MixVidQA"] * 8, problem=["q"] * 8,
    )
    assert out == [1.0] * 6 + [0.0] * 2
    assert sum(n for _, n in qwen.requests) == 2
    assert fn.client.stats.cache_hits == 6


def test_versavid_reward_dead_judge_raises_or_skips():
    url = down_url()
    kwargs = dict(prompts=["q"] * 2, completions=[good("x"), good("B")], solution=[MIX_GT, "B"],
                  problem_type=["MixVidQA", "MCQA"], problem=["q", "q"])
    loud = make_versavid_reward(RewardConfig(qwen_judge_urls=url, retries=1, backoff_s=0.01, timeout_s=2))
    with pytest.raises(JudgeError, match=url.replace(".", r"\.")):
        run_reward(loud, **kwargs)
    quiet = make_versavid_reward(
        RewardConfig(qwen_judge_urls=url, retries=1, backoff_s=0.01, timeout_s=2, on_judge_error="skip")
    )
    metrics: dict[str, float] = {}
    assert run_reward(quiet, log_metric=metrics.__setitem__, **kwargs) == [None, 1.0]
    assert metrics["judge/skipped"] == 1.0 and metrics["judge/failures"] == 1.0 and metrics["judge/retries"] == 1.0


@pytest.mark.parametrize(
    "kwargs,error",
    [
        (dict(solution=["B"]), TypeError),  # no problem_type column
        (dict(problem_type=["MCQA"]), TypeError),  # no solution column
        (dict(solution=["B", "C"], problem_type=["MCQA"]), ValueError),  # wrong length
        (dict(solution=["B"], problem_type=["essay"]), ValueError),  # unknown type
    ],
)
def test_versavid_reward_rejects_bad_columns(kwargs, error):
    with pytest.raises(error):
        asyncio.run(versavid_reward(prompts=["q"], completions=[good("B")], **kwargs))


def test_public_reward_function_shape():
    assert versavid_reward.__name__ == "versavid_reward"
    assert inspect.iscoroutinefunction(versavid_reward)
    fn = make_versavid_reward(RewardConfig(on_judge_error="skip"))
    assert fn.__name__ == "versavid_reward" and inspect.iscoroutinefunction(fn)
    assert isinstance(fn.client, JudgeClient) and fn.client.on_judge_error == "skip"
    assert versavid_reward.config.qwen_judge_urls == ("http://127.0.0.1:5000",)
    assert versavid_reward.config.caption_judge_urls == ("http://127.0.0.1:5200",)
    # MCQA-only batches need no judge at all.
    out = asyncio.run(versavid_reward(prompts=["q"], completions=[good("B")], solution=["B"], problem_type=["MCQA"]))
    assert out == [1.0]


@pytest.mark.parametrize(
    "data,error",
    [
        ({"composition": "product"}, "composition"),
        ({"on_judge_error": "ignore"}, "on_judge_error"),
        ({"format_mode": "loose"}, "format_mode"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": math.inf}, "timeout_s"),
        ({"qwen_judge_urls": "localhost:5000"}, "http"),
        ({"judge_url": "x"}, "unknown"),
    ],
)
def test_reward_config_validation(data, error):
    with pytest.raises(ValueError, match=error):
        RewardConfig.from_dict(data)


def test_reward_config_from_dict_round_trip():
    cfg = RewardConfig.from_dict({"qwen_judge_urls": "http://a:1/, http://b:2", "composition": "sum"})
    assert cfg.qwen_judge_urls == ("http://a:1", "http://b:2")
    assert RewardConfig.from_dict(cfg.to_dict()) == cfg
