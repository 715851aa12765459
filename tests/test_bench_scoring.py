"""Official scoring of fixed predictions, benchmark by benchmark, against numbers worked out by hand from each
benchmark's rules: the rows are the converted native-layout copies (bench_fixtures), the completions are
written here, and scoring runs through `official.score_batch` (the evaluation's scoring path) and
`official_summary` (the benchmarks' aggregates). MMVU and VidCapBench are judged over HTTP through the real
`openai` client by an OpenAI-compatible stub that plays GPT-4o."""
from __future__ import annotations

import asyncio
import json
import re

import pytest

from bench_fixtures import write_all
from openai_stub_server import StubChat, last_user_text, serve_stub
from versavid_r1.answer import extract_answer
from versavid_r1.data import VideoConfig
from versavid_r1.eval.benchmarks import get_benchmark
from versavid_r1.eval.benchmarks.extract import fallback_letter
from versavid_r1.eval.benchmarks.judge import vidcapbench_grade
from versavid_r1.eval.config import EvalConfig
from versavid_r1.eval.convert import main as convert_main
from versavid_r1.eval.formats import load_eval_items
from versavid_r1.eval.official import official_summary, score_batch
from versavid_r1.eval.runner import _base_record
from versavid_r1.eval.scoring import JUDGE_ERROR, OK
from versavid_r1.rewards import JudgeClient

VIDCAP_GRADES = {"What colour is the sky?": '{"score": 2}', "Does the camera move?": '{"score": -1}',
                 "Does the ball fall down?": "Score: 0 - the answer does not say"}


def gpt4o_stub(body: dict) -> str:
    """MMVU: correct when the ground truth occurs in the response's answer; VidCapBench: fixed grades."""
    text = last_user_text(body)
    if text.startswith("Question:"):  # MMVU's layout
        truth = re.search(r"Ground-truth answer: (.*)\n", text).group(1)
        answer = extract_answer(text.split("Model response: ", 1)[1])
        return json.dumps({"extracted_answer": answer, "correct": truth.lower() in answer.lower()})
    if "Predicted answer:" in text:
        question = re.search(r"Question: (.*)\n", text).group(1)
        return VIDCAP_GRADES[question]
    return "the sky is blue"


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    base = tmp_path_factory.mktemp("scoring")
    out = {}
    for name, args in write_all(base / "raw").items():
        path = base / f"{name}.jsonl"
        assert convert_main([name, *args, "--out", str(path)]) == 0
        out[name] = {it.id: it for it in load_eval_items(path, "auto", VideoConfig())}
    return out


@pytest.fixture(scope="module")
def judge_url():
    srv = serve_stub(StubChat(responder=gpt4o_stub))
    yield srv.url + "/v1"
    srv.stop()


def score(items, completions: dict, judge_url: str = "http://127.0.0.1:9/v1") -> tuple[list[dict], dict]:
    """Records of `completions` {id: text} as the runner writes them, and the official summary."""
    cfg = EvalConfig(bench_judge_url=judge_url, bench_judge_model="stub-gpt-4o", judge_retries=0)
    chosen = [items[i] for i in completions]

    async def run():
        client = JudgeClient.from_config(cfg.reward_config())
        try:
            return await score_batch([it.row for it in chosen], list(completions.values()), cfg, client)
        finally:
            await client.aclose()
    fields = asyncio.run(run())
    records = [{**_base_record(it), "completion": c, **f} for it, c, f in zip(chosen, completions.values(), fields)]
    return records, official_summary(records)


def ans(text: str) -> str:
    return f"<think>I look at the video.</think><answer>{text}</answer>"


def test_multiple_choice_benchmarks(rows):
    cases = {  # benchmark: ({id: completion}, accuracy worked out from the benchmark's rule)
        "videomme": ({"videomme/001-1": ans("The answer is (C)."), "videomme/301-1": ans("A. Runs.")}, 0.5),
        "longvideobench": ({"longvideobench/q4": ans("E"),   # 4 options, but the rule reads A-E: E, wrong
                            "longvideobench/q5": ans("The correct answer is E")}, 0.5),
        "mvbench": ({"action_sequence/0": ans("b. ran"), "object_existence/0": ans("Answer: B")}, 0.5),
        "nextqa": ({"nextqa/4010069381_6": ans("the man would strum the string with his fingers"),
                    "nextqa/2574374895_8": ans("A or D")}, 0.5),
        "video_holmes": ({"video_holmes/1": "<think>A?</think><answer>C: she is scared</answer>",
                          "video_holmes/2": ans("Answer: F")}, 0.5),   # read as A by Video-Holmes's rule
    }
    for name, (completions, accuracy) in cases.items():
        records, summary = score(rows[name], completions)
        assert all(r["status"] == OK for r in records), name
        assert summary[name]["value"] == accuracy and summary[name]["n"] == 2, (name, records)
    _, summary = score(rows["videomme"], cases["videomme"][0])
    assert summary["videomme"]["by_category"]["duration"]["short"]["value"] == 1.0
    assert summary["videomme"]["by_category"]["duration"]["medium"]["value"] == 0.0
    _, summary = score(rows["video_holmes"], cases["video_holmes"][0])
    assert {k: v["value"] for k, v in summary["video_holmes"]["by_category"]["question_type"].items()} == \
        {"SR": 0.0, "TCI": 1.0}


def test_unparseable_reply_gets_the_fixed_fallback(rows):
    records, summary = score(rows["intentqa"], {"intentqa/6102982194_2": ans("(C)"),
                                                "intentqa/2927552798_3": ans("I am not sure")})
    fallback = fallback_letter("intentqa/2927552798_3", 5)
    assert records[1]["official_parsed"] is False and records[1]["official_answer"] == fallback
    assert summary["intentqa"]["value"] == (1.0 + (fallback == "A")) / 2
    assert summary["intentqa"]["n_unparsed"] == 1


def test_causal_vidqa_needs_answer_and_reason(rows):
    right_answers = {"D": "A", "E": "B", "PA": "A", "PR": "C", "CA": "A", "CR": "(A)"}  # all answers are A
    completions = {f"causal_vidqa/vid_a_{k}": ans(right_answers[p]) for k, p in enumerate(right_answers)}
    _, summary = score(rows["causal_vidqa"], completions)
    section = summary["causal_vidqa"]
    # description right, explanation wrong, prediction: answer right but reason wrong -> wrong, counterfactual right
    assert section["value"] == 0.5 and section["n"] == 4
    assert {k: v["value"] for k, v in section["by_category"]["type"].items()} == \
        {"description": 1.0, "explanation": 0.0, "prediction": 0.0, "counterfactual": 1.0}
    assert section["parts"] == {"CA": 1.0, "CR": 1.0, "D": 1.0, "E": 0.0, "PA": 1.0, "PR": 0.0}


def test_mmvu_is_judged_for_both_forms(rows, judge_url):
    records, summary = score(rows["mmvu"], {"mmvu/validation_1": ans("B"), "mmvu/validation_0": ans("a zoom")},
                             judge_url)
    assert [r["status"] for r in records] == [OK, OK]
    assert records[0]["official_score"] == 1.0 and records[0]["score"] == 1.0          # project letter score too
    assert records[1]["official_score"] == 0.0 and records[1]["task_reward"] is None   # judge only
    assert records[1]["official_judge"]["served_model"] == "stub-gpt-4o"
    section = summary["mmvu"]
    assert section["value"] == 0.5 and section["judge"]["model"] == "stub-gpt-4o"
    assert section["by_category"]["question_form"]["open-ended"]["value"] == 0.0


def test_benchmark_judge_failure_is_an_error_not_a_zero(rows):
    stub = StubChat(responder=lambda body: "I cannot decide.")
    with serve_stub(stub) as srv:
        records, summary = score(rows["mmvu"], {"mmvu/validation_1": ans("B"), "mmvu/validation_0": ans("x")},
                                 srv.url + "/v1")
    assert [r["status"] for r in records] == [JUDGE_ERROR, JUDGE_ERROR]
    assert records[1]["score"] is None and "no JSON object" in records[1]["error"]
    assert summary["mmvu"]["value"] is None and summary["mmvu"]["n_errors"] == 2


def test_vidcapbench_qa_grades(rows, judge_url):
    records, summary = score(rows["vidcapbench"], {"vidcapbench/videos_qa_80": ans("A blue sky over a field.")},
                             judge_url)
    assert [p["grade"] for p in records[0]["official_qa"]] == ["A", "D", "C"]
    assert all(p["pred"] == "the sky is blue" for p in records[0]["official_qa"])
    section = summary["vidcapbench"]
    assert (section["accuracy"], section["precision"], section["coverage"]) == (1 / 3, 1 / 2, 2 / 3)
    dims = section["by_category"]["dimension"]
    assert (dims["aesthetics"]["accuracy"], dims["aesthetics"]["coverage"]) == (0.5, 1.0)
    assert (dims["physics"]["accuracy"], dims["physics"]["precision"]) == (0.0, None)


@pytest.mark.parametrize("reply, grade", [
    ('{"score": 2}', "A"), ('{"score": -1}', "D"), ("Score: 1", "B"), ("0", "C"), ("no digits", None),
    ("{'score': 1, 'analysis': 'not a 2'}", "A"),  # VidCapBench reads a 2 anywhere first, as its eval.py does
])
def test_vidcapbench_reading_of_a_reply(reply, grade):
    assert vidcapbench_grade(reply) == grade


def test_project_judged_aggregates():
    def records(name, scores, **extra):
        return [{"benchmark": name, "status": OK if s is not None else JUDGE_ERROR, "official_score": s,
                 **{k: v[i] for k, v in extra.items()}} for i, s in enumerate(scores)]
    dei = get_benchmark("dei_test").aggregate(records("dei_test", [2.0, 1.0, 0.0, None]))
    assert (dei["value"], dei["mean"], dei["n"], dei["n_errors"]) == (3.0, 1.0, 3, 1)   # the paper's sum
    mix = get_benchmark("mixvidqa_test").aggregate(records("mixvidqa_test", [1.0, 0.0, 1.0]))
    assert mix["value"] == pytest.approx(2 / 3)
    dream = get_benchmark("dream1k").aggregate(
        records("dream1k", [0.6, 0.5], recall=[1.0, 0.5], precision=[0.5, 0.5], categories=[{"subset": "a"}] * 2))
    # F1 of the MEAN recall 0.75 and MEAN precision 0.5, not the mean of the samples' F1
    assert dream["value"] == pytest.approx(0.6) and dream["recall"] == 0.75
