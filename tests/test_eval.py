"""End-to-end evaluation: the offline tiny Qwen2.5-VL on the demo dataset, with the real judge services served
on 127.0.0.1 (the Qwen2.5 judge on the tiny causal LM with the transformers backend, and, for known score
values, the Qwen2.5 judge's openai backend and the AutoDQ caption judge pointed at the OpenAI-compatible stub
with a scripted rule). Covers: files and summary, summary == recomputation from samples.jsonl, batched ==
one-by-one generation, resume after --max_samples and after a real SIGKILL, bad rows and unreadable videos,
scores through the judges, CLI errors."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from openai_stub_server import autodq_rule, last_user_text, prompt_field, serve_stub, StubChat
from versavid_r1 import prompts, tasks
from versavid_r1.answer import wrap_answer
from versavid_r1.data import load_video, make_conversation
from versavid_r1.eval import GENERATIONS_FILE, SAMPLES_FILE, SUMMARY_JSON, SUMMARY_MD, parse_eval_args, run_eval
from versavid_r1.eval.__main__ import main as eval_main
from versavid_r1.eval.formats import load_eval_items
from versavid_r1.eval.generation import HFGenerator
from versavid_r1.eval.models import load_eval_model
from versavid_r1.eval.report import markdown, summarize
from versavid_r1.eval.scoring import f1_score, score_completions
from versavid_r1.eval.store import RecordFile
from versavid_r1.judges import CaptionJudgeSettings, QwenJudgeSettings, create_caption_judge_app, create_qwen_judge_app
from versavid_r1.judges.server import BackgroundServer, free_port
from versavid_r1.rewards import JudgeClient, caption_reward, multiple_choice_reward

ROOT = Path(__file__).resolve().parents[1]
N_DEMO = 8  # every problem type (MCQA, DarkEventInfer, MixVidQA, caption, MCQA, MCQA, ...)


# --- judges ----------------------------------------------------------------------------------------------
def judge_rule(body: dict) -> str:
    """Scripted verdicts with known values: DEI = len(prediction) % 3, MixVidQA = even length; AutoDQ rule."""
    text = last_user_text(body)
    pred = prompt_field(body, "prediction")
    if pred is not None and "blacked out" in text:
        return str(len(pred) % 3)
    if pred is not None and "<question>" in text:
        return "True" if len(pred) % 2 == 0 else "False"
    return autodq_rule(body)


def dei_expected(answer: str) -> float:
    return float(len(answer) % 3) if answer else 0.0


def mix_expected(answer: str) -> float:
    return float(len(answer) % 2 == 0) if answer else 0.0


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("eval")


@pytest.fixture(scope="module")
def tiny_vl(base):
    from versavid_r1.tiny_model import build_tiny_qwen25vl

    return str(build_tiny_qwen25vl(base / "tiny-vl", seed=0))


@pytest.fixture(scope="module")
def demo(base):
    from versavid_r1.data.demo import make_demo_dataset

    return make_demo_dataset(base / "demo", n=N_DEMO, seed=0)


@pytest.fixture(scope="module")
def stub():
    srv = serve_stub(StubChat(responder=judge_rule))
    yield srv.url
    srv.stop()


@pytest.fixture(scope="module")
def qwen_tiny_judge(base):
    """The Qwen2.5 judge, transformers backend, on the random tiny causal LM (verdicts are unparseable)."""
    from versavid_r1.tiny_model import build_tiny_causal_lm

    settings = QwenJudgeSettings(model=str(build_tiny_causal_lm(base / "tiny-lm", seed=0)), backend="transformers",
                                 device="cpu", served_model_name="tiny-judge", max_new_tokens=4, max_wait_ms=20)
    with BackgroundServer(create_qwen_judge_app(settings)) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def qwen_stub_judge(stub):
    # judge_rule scores the prediction alone (by its length), so it would "match" any decoy: no decoy check
    settings = QwenJudgeSettings(model="stub-qwen", backend="openai", openai_base_url=stub + "/v1", decoy_check=False)
    with BackgroundServer(create_qwen_judge_app(settings)) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def caption_judge(stub):
    settings = CaptionJudgeSettings(model="stub-model", base_url=stub + "/v1", transport_retries=0)
    with BackgroundServer(create_caption_judge_app(settings)) as srv:
        yield srv.url


def write_config(path: Path, data: Path, out: Path, **extra) -> Path:
    """A YAML with tiny settings (4 frames, small pixels, 8 new tokens)."""
    cfg = {"task_name": "demo", "data_path": str(data), "output_dir": str(out), "nframes": 4, "video_fps": None,
           "min_pixels": 4 * 28 * 28, "max_pixels": 8 * 28 * 28, "batch_size": 4, "max_new_tokens": 8,
           "judge_timeout": 30, "judge_retries": 1, **extra}
    path.write_text(yaml.safe_dump(cfg))
    return path


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def recompute(records: list[dict]) -> dict:
    """The summary's headline numbers recomputed from per-sample records, independently of report.py."""
    out = {}
    for ptype in tasks.PROBLEM_TYPES:
        ok = [r for r in records if r["problem_type"] == ptype and r["status"] == "ok"]
        if not ok:
            continue
        scores = [r["score"] for r in ok]
        broken = [r["score"] for r in ok if not r["format_ok"]]
        good = [r["score"] for r in ok if r["format_ok"]]
        entry = {"n": len(ok), "score_sum": sum(scores), "score_mean": sum(scores) / len(ok),
                 "format_rate": len(good) / len(ok), "gated_score_mean": sum(good) / len(ok),
                 "score_mean_format_broken": sum(broken) / len(broken) if broken else None}
        if ptype == tasks.CAPTION:
            r_ = sum(r["recall"] for r in ok) / len(ok)
            p_ = sum(r["precision"] for r in ok) / len(ok)
            entry.update(recall=r_, precision=p_, f1=0.0 if r_ + p_ == 0 else 2 * r_ * p_ / (r_ + p_))
        out[ptype] = entry
    return out


def assert_summary_matches(summary: dict, records: list[dict]) -> None:
    expected = recompute(records)
    assert set(summary["by_type"]) == {r["problem_type"] for r in records}   # types with no scored row too
    assert set(expected) <= set(summary["by_type"])
    for ptype, want in expected.items():
        got = summary["by_type"][ptype]["overall"]
        for key, value in want.items():
            assert got[key] == pytest.approx(value), (ptype, key)


# --- tests -----------------------------------------------------------------------------------------------
def test_run_writes_files_and_summary_equals_recomputation(tiny_vl, demo, base, qwen_tiny_judge, caption_judge):
    out = base / "run-tiny-judge"
    cfg = parse_eval_args(["--config", str(write_config(base / "a.yaml", demo, out)), "--model", tiny_vl,
                           "--qwen_judge_url", qwen_tiny_judge, "--caption_judge_url", caption_judge])
    summary = run_eval(cfg)

    for name in (SAMPLES_FILE, GENERATIONS_FILE, SUMMARY_JSON, SUMMARY_MD, "eval_config.json"):
        assert (out / name).is_file(), name
    records = [json.loads(x) for x in lines(out / SAMPLES_FILE)]
    demo_rows = [json.loads(x) for x in lines(demo)]
    assert [r["id"] for r in records] == [r["id"] for r in demo_rows]
    unparseable = {t: 0 for t in tasks.PROBLEM_TYPES}
    for rec, row in zip(records, demo_rows):
        assert rec["problem_type"] == row["problem_type"] and rec["num_frames"] == 4
        assert rec["prompt"].endswith(prompts.THINK_ANSWER_INSTRUCTION)
        assert isinstance(rec["completion"], str) and rec["format_ok"] in (True, False)
        if row["problem_type"] == tasks.MCQA:  # rule-scored exactly like the training reward
            assert rec["score"] == multiple_choice_reward(wrap_answer(rec["answer"]), row["solution"])
        elif row["problem_type"] == tasks.CAPTION:
            assert 0.0 <= rec["recall"] <= 1.0
            assert rec["score"] == pytest.approx(f1_score(rec["recall"], rec["precision"]))
        elif rec["judge"]["verdict"] == "unparseable":  # the random tiny judge: a judge failure, never a 0
            assert (rec["status"], rec["score"], rec["judge_failure"]) == ("judge_error", None, "unparseable")
            assert "no clean verdict" in rec["error"] and isinstance(rec["judge"]["raw"], str)
            unparseable[row["problem_type"]] += 1
        else:
            assert rec["judge"]["verdict"] == "empty" and rec["score"] == 0.0
        if rec["status"] != "judge_error":
            assert rec["status"] == "ok"

    assert summary == json.loads((out / SUMMARY_JSON).read_text())
    n_bad = sum(unparseable.values())
    assert n_bad > 0
    assert summary["counts"]["scored"] == N_DEMO - n_bad and summary["counts"]["not_scored"] == n_bad
    for ptype in (tasks.DARK_EVENT_INFER, tasks.MIX_VID_QA):
        overall = summary["by_type"][ptype]["overall"]
        assert overall["n_unparseable"] == unparseable[ptype] and overall["n_suspected_injection"] == 0
    assert summary["run"]["generated"] == N_DEMO and summary["run"]["generate_calls"] == 2  # batch_size 4
    assert_summary_matches(summary, records)
    md = (out / SUMMARY_MD).read_text()
    for title in ("## MCQA (accuracy)", "## DarkEventInfer", "## MixVidQA", "## caption (AutoDQ F1)", "**overall**"):
        assert title in md


def test_batched_generation_equals_one_by_one(tiny_vl, demo, base):
    """Left padding, the video fields of several rows and greedy decoding: a batch gives each row's own output."""
    cfg = parse_eval_args(["--config", str(write_config(base / "b.yaml", demo, base / "unused")), "--model", tiny_vl,
                           "--max_new_tokens", "12"])
    model, processor = load_eval_model(cfg)
    gen = HFGenerator(model, processor, cfg)
    vcfg = cfg.video_config()
    inputs = [gen.prepare(make_conversation(it.row, vcfg), [load_video(it.row, vcfg)])
              for it in load_eval_items(demo, "auto", vcfg)]
    assert len({len(x.input_ids) for x in inputs}) > 1  # prompts of different lengths: padding is exercised
    batched = gen.generate(inputs)
    assert batched == [gen.generate([x])[0] for x in inputs]
    assert gen.calls == 1 + len(inputs)


def run_cli(config: Path, *flags: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "versavid_r1.eval", "--config", str(config), *flags],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


@pytest.mark.slow
def test_resume_after_limit_generates_only_the_rest(tiny_vl, demo, base, qwen_stub_judge, caption_judge):
    out = base / "run-resume"
    config = write_config(base / "c.yaml", demo, out, batch_size=2, qwen_judge_url=qwen_stub_judge,
                          caption_judge_url=caption_judge)
    first = run_eval(parse_eval_args(["--config", str(config), "--model", tiny_vl, "--limit", "3"]))
    assert first["counts"]["rows"] == 3 and first["run"]["generated"] == 3 and first["run"]["generate_calls"] == 2
    first_lines = lines(out / SAMPLES_FILE)
    assert len(first_lines) == 3

    proc = run_cli(config, "--model", tiny_vl)  # the full run, as a user would type it
    log, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, log
    summary = json.loads((out / SUMMARY_JSON).read_text())
    assert summary["run"]["already_finished"] == 3
    assert summary["run"]["generated"] == N_DEMO - 3 and summary["run"]["generate_calls"] == math.ceil(5 / 2)
    all_lines = lines(out / SAMPLES_FILE)
    assert all_lines[:3] == first_lines and len(all_lines) == N_DEMO  # nothing redone, nothing duplicated
    assert len(lines(out / GENERATIONS_FILE)) == N_DEMO
    records = [json.loads(x) for x in all_lines]
    assert sorted(r["id"] for r in records) == sorted(json.loads(x)["id"] for x in lines(demo))
    assert "## DarkEventInfer" in log and "per-sample results" in log

    # Judge scores follow the stub's scripted rule, and the summary adds them up.
    for r in records:
        if r["problem_type"] == tasks.DARK_EVENT_INFER:
            assert r["score"] == dei_expected(r["answer"])
        if r["problem_type"] == tasks.MIX_VID_QA:
            assert r["score"] == mix_expected(r["answer"])
    dei = [r["score"] for r in records if r["problem_type"] == tasks.DARK_EVENT_INFER]
    assert summary["by_type"][tasks.DARK_EVENT_INFER]["overall"]["score_sum"] == sum(dei)
    assert_summary_matches(summary, records)

    again = run_eval(parse_eval_args(["--config", str(config), "--model", tiny_vl]))
    assert again["run"]["generated"] == 0 and again["run"]["already_finished"] == N_DEMO
    assert len(lines(out / SAMPLES_FILE)) == N_DEMO
    assert again["by_type"] == summary["by_type"]


@pytest.mark.slow
def test_sigkill_mid_run_loses_at_most_the_batch_in_flight(tiny_vl, demo, base):
    # 40 multiple-choice rows (no judge needed), one per batch: the kill lands between two appends or
    # inside one generate call.
    mcqa = [json.loads(x) for x in lines(demo) if json.loads(x)["problem_type"] == tasks.MCQA]
    data = base / "kill.jsonl"
    rows = []
    for i in range(40):
        row = dict(mcqa[i % len(mcqa)], id=f"k{i:02d}")
        row["video"] = str(demo.parent / row["video"])
        rows.append(json.dumps(row))
    data.write_text("\n".join(rows) + "\n")
    out = base / "run-kill"
    config = write_config(base / "k.yaml", data, out, batch_size=1)

    proc = run_cli(config, "--model", tiny_vl, start_new_session=True)
    samples = out / SAMPLES_FILE
    deadline = time.monotonic() + 180
    while len(lines(samples)) < 2:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no sample written in time"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    kept = RecordFile(samples).load()  # a torn last line would be repaired here
    n_done = sum(r["status"] == "ok" for r in kept.values())
    before = lines(samples)
    assert 2 <= n_done < 40 and len(before) == n_done
    n_generated = len(RecordFile(out / GENERATIONS_FILE).load())
    # Completions are kept as soon as they are generated; scoring trails generation by at most two batches.
    assert n_done <= n_generated <= n_done + 2

    summary = run_eval(parse_eval_args(["--config", str(config), "--model", tiny_vl]))
    run = summary["run"]
    assert run["already_finished"] == n_done
    assert run["scored_from_kept_generations"] == n_generated - n_done
    assert run["generated"] == 40 - n_generated
    after = lines(samples)
    assert after[:n_done] == before and len(after) == 40
    assert sorted(json.loads(x)["id"] for x in after) == [f"k{i:02d}" for i in range(40)]
    assert summary["counts"]["scored"] == 40


def test_judge_outage_keeps_completions_and_the_next_run_scores_them(tiny_vl, demo, base, qwen_stub_judge,
                                                                      caption_judge):
    out = base / "run-outage"
    dead = f"http://127.0.0.1:{free_port()}"
    config = write_config(base / "o.yaml", demo, out, judge_retries=0, caption_judge_url=caption_judge)
    first = run_eval(parse_eval_args(["--config", str(config), "--model", tiny_vl, "--qwen_judge_url", dead,
                                      "--check_judges", "false"]))
    judged = {tasks.DARK_EVENT_INFER, tasks.MIX_VID_QA}
    n_judged = sum(json.loads(line)["problem_type"] in judged for line in demo.read_text().splitlines())
    assert 0 < n_judged < N_DEMO and first["counts"]["by_status"] == {"judge_error": n_judged, "ok": N_DEMO - n_judged}
    assert {e["problem_type"] for e in first["errors"]} == judged
    kept = RecordFile(out / GENERATIONS_FILE).load()
    assert len(kept) == N_DEMO

    second = run_eval(parse_eval_args(["--config", str(config), "--model", tiny_vl, "--qwen_judge_url",
                                       qwen_stub_judge]))
    assert second["run"]["generated"] == 0 and second["run"]["scored_from_kept_generations"] == n_judged
    assert second["counts"]["by_status"] == {"ok": N_DEMO}
    current = RecordFile(out / SAMPLES_FILE).load()
    for rid, rec in current.items():
        assert rec["completion"] == kept[rid]["completion"]
        if rec["problem_type"] == tasks.DARK_EVENT_INFER:
            assert rec["score"] == dei_expected(rec["answer"])


def test_scores_through_the_judges(qwen_stub_judge, caption_judge, base, tiny_vl):
    """Known completions scored through the real services (stub model behind them): exact values."""
    import asyncio

    cfg = parse_eval_args(["--model", tiny_vl, "--data_path", str(base / "none.jsonl"),
                           "--qwen_judge_url", qwen_stub_judge, "--caption_judge_url", caption_judge])
    gt_caption = "A man opens the door. A man walks in."
    cases = [  # (row, completion, expected score, expected format_ok)
        ({"problem_type": "MCQA", "solution": "<answer>B</answer>"}, "<think>r</think><answer>B</answer>", 1.0, True),
        ({"problem_type": "MCQA", "solution": "<answer>B</answer>"}, "<answer>B</answer>", 1.0, False),
        ({"problem_type": "MCQA", "solution": "<answer>B</answer>"}, "The answer is B.", 1.0, False),
        ({"problem_type": "MCQA", "solution": "<answer>B</answer>"}, "<think>r</think><answer>C</answer>", 0.0, True),
        ({"problem_type": "DarkEventInfer", "solution": "<answer>x</answer>"}, "<think>r</think><answer>ab</answer>",
         2.0, True),
        ({"problem_type": "DarkEventInfer", "solution": "<answer>x</answer>"}, "<think>r</think><answer>abc</answer>",
         0.0, True),
        ({"problem_type": "MixVidQA", "solution": "<answer>red</answer>", "problem": "Which colour?"},
         "<think>r</think><answer>abcd</answer>", 1.0, True),
        ({"problem_type": "caption", "solution": f"<answer>{gt_caption}</answer>"},
         "<think>r</think><answer></answer>", 0.0, True),
        ({"problem_type": "caption", "solution": f"<answer>{gt_caption}</answer>"},
         "<think>r</think><answer>A man opens the door. A dog barks.</answer>", 0.5, True),
    ]
    rows = [{"problem": "q", **row} for row, *_ in cases]
    client = JudgeClient.from_config(cfg.reward_config())
    fields = asyncio.run(score_completions(rows, [c for _, c, *_ in cases], cfg, client))
    for f, (row, completion, score, fmt) in zip(fields, cases):
        assert (f["status"], f["score"], f["format_ok"]) == ("ok", score, fmt), (completion, f)
    assert fields[2]["answer_tagged"] is False and fields[2]["answer"] == "The answer is B."
    assert fields[4]["judge"]["verdict"] == "2"
    # an empty caption is scored by the caption judge's rules (here the project's: 0 and 0, no events)
    assert (fields[-2]["recall"], fields[-2]["precision"], fields[-2]["judge"]["pred_events"]) == (0.0, 0.0, [])
    cap = fields[-1]
    assert (cap["recall"], cap["precision"], cap["f1"]) == (0.5, 0.5, 0.5)
    assert cap["task_reward"] == pytest.approx(caption_reward(cases[-1][1], 0.5, 0.5))

    # Without the fallback an untagged answer scores 0; in direct mode a lone answer block is well formed.
    cfg.answer_fallback, cfg.prompt_mode = False, "direct"
    f = asyncio.run(score_completions(rows[1:3], [cases[1][1], cases[2][1]], cfg, client))
    assert [(x["score"], x["format_ok"]) for x in f] == [(1.0, True), (0.0, False)]

    # Format-broken answers are reported apart, not mixed in silently.
    records = [{**r, **x, "id": str(i), "category": None} for i, (r, x) in enumerate(zip(rows, fields))]
    mcqa = summarize(records)["by_type"]["MCQA"]["overall"]
    assert (mcqa["score_mean"], mcqa["score_mean_format_ok"], mcqa["score_mean_format_broken"],
            mcqa["gated_score_mean"], mcqa["format_rate"]) == (0.75, 0.5, 1.0, 0.25, 0.5)
    dei = summarize(records)["by_type"]["DarkEventInfer"]["overall"]
    assert (dei["score_sum"], dei["score_mean"]) == (2.0, 1.0)

    # Per category: the MCQA rows in two categories, plus one row of the first whose video was unreadable.
    for rec, cat in zip(records[:4], ("X", "X", "Y", "Y")):
        rec["category"] = cat
    records.append({"id": "bad", "line": 99, "problem_type": "MCQA", "category": "X", "status": "video_error",
                    "error": "VideoReadError: broken", "score": None})
    summary = summarize(records, {"task_name": "cats"})
    cats = summary["by_type"]["MCQA"]["by_category"]
    assert (cats["X"]["n"], cats["X"]["n_errors"], cats["X"]["score_mean"], cats["X"]["score_mean_errors_as_zero"]) \
        == (2, 1, 1.0, pytest.approx(2 / 3))
    assert (cats["Y"]["n"], cats["Y"]["score_mean"], cats["Y"]["score_mean_format_broken"]) == (2, 0.5, 1.0)
    assert "by_category" not in summary["by_type"]["caption"]  # no categories there: overall only
    table = markdown(summary)
    assert "| X | 2 | 1 | 100.0 | 66.7 |" in table and "| Y | 2 | 0 | 50.0 | 50.0 |" in table
    assert summary["counts"]["by_status"] == {"ok": len(cases), "video_error": 1}


def test_bad_rows_and_unreadable_videos_are_counted(tiny_vl, demo, base):
    rows = [json.loads(x) for x in lines(demo)]
    good = [dict(r, video=str(demo.parent / r["video"])) for r in rows if r["problem_type"] == tasks.MCQA]
    broken_video = base / "broken.mp4"
    broken_video.write_bytes(b"this is not an mp4 file" * 50)
    data = base / "bad.jsonl"
    data.write_text("\n".join([
        json.dumps(good[0]),
        "{not json",
        json.dumps({"id": "no-option", "video": good[0]["video"], "question": "Q?", "options": ["a", "b"],
                    "answer": "Z"}),
        json.dumps(dict(good[1], id="missing-video", video=str(base / "nowhere.mp4"))),
        json.dumps(dict(good[1], id="corrupt-video", video=str(broken_video))),
        json.dumps(good[0]),  # duplicate id
        json.dumps(good[1]),
    ]) + "\n")
    out = base / "run-bad"
    config = write_config(base / "bad.yaml", data, out)
    summary = run_eval(parse_eval_args(["--config", str(config), "--model", tiny_vl]))

    assert summary["counts"] == {"rows": 7, "scored": 2, "not_scored": 5,
                                 "by_status": {"invalid_row": 3, "ok": 2, "video_error": 2}}
    errors = {e["line"]: e for e in summary["errors"]}
    assert set(errors) == {2, 3, 4, 5, 6}
    assert "invalid JSON" in errors[2]["error"]
    assert "answer" in errors[3]["error"] and "Z" in errors[3]["error"]
    assert errors[4]["status"] == "video_error" and "nowhere.mp4" in errors[4]["error"]
    assert errors[5]["status"] == "video_error" and errors[5]["id"] == "corrupt-video"
    assert "duplicate id" in errors[6]["error"]
    mcqa = summary["by_type"]["MCQA"]["overall"]
    assert (mcqa["n"], mcqa["n_errors"]) == (2, 3)  # rows of unknown type are only counted globally
    md = (out / SUMMARY_MD).read_text()
    assert "5 not scored" in md and "video_error: 2" in md

    n_lines = len(lines(out / SAMPLES_FILE))
    again = run_eval(parse_eval_args(["--config", str(config), "--model", tiny_vl]))
    assert again["counts"] == summary["counts"] and again["run"]["generated"] == 0
    assert len(lines(out / SAMPLES_FILE)) == n_lines  # the same errors are not appended again


def test_cli_refuses_what_cannot_work(tiny_vl, demo, base, capsys):
    out = base / "run-cli"
    config = write_config(base / "cli.yaml", demo, out, max_samples=2)
    dead = f"http://127.0.0.1:{free_port()}"
    assert eval_main(["--config", str(config), "--model", tiny_vl, "--qwen_judge_url", dead]) == 2
    err = capsys.readouterr().err
    assert "Qwen2.5 judge" in err and dead in err

    assert eval_main(["--config", str(config), "--model", tiny_vl, "--backend", "vllm", "--check_judges", "false",
                      "--max_samples", "1"]) == 2
    assert "vllm" in capsys.readouterr().err

    assert eval_main(["--config", str(config), "--model", tiny_vl, "--max_samples", "1"]) == 0
    assert eval_main(["--config", str(config), "--model", tiny_vl, "--max_samples", "1",
                      "--max_new_tokens", "4"]) == 2
    assert "max_new_tokens: 8 -> 4" in capsys.readouterr().err
    assert eval_main(["--config", str(config), "--model", tiny_vl, "--max_samples", "1", "--max_new_tokens", "4",
                      "--overwrite"]) == 0
    assert len(lines(out / SAMPLES_FILE)) == 1
