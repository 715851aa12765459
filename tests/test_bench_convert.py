"""The twelve converters (`python -m versavid_r1.eval.convert NAME`) on copies of the benchmarks written in their
released layouts (tests/bench_fixtures.py): rows, answers, categories, missing videos listed and kept, the
rows readable by the evaluation, and a wrong root as one error line naming what was expected."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench_fixtures import EXPECTED_ROWS, write_all
from versavid_r1.data import VideoConfig
from versavid_r1.eval.benchmarks import BENCHMARKS
from versavid_r1.eval.convert import main as convert_main
from versavid_r1.eval.formats import load_eval_items


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    base = tmp_path_factory.mktemp("bench")
    flags = write_all(base / "raw")
    out = {}
    for name, args in flags.items():
        path = base / "data" / f"{name}.jsonl"
        assert convert_main([name, *args, "--out", str(path)]) == 0, name
        out[name] = [json.loads(line) for line in path.read_text().splitlines()]
    return base, out


def by_id(rows):
    return {r["id"]: r for r in rows}


def test_every_benchmark_converts_with_its_rows_and_categories(converted, capsys):
    base, rows = converted
    assert set(rows) == set(BENCHMARKS)
    for name, (n_rows, n_missing) in EXPECTED_ROWS.items():
        assert len(rows[name]) == n_rows, name
        missing = [r for r in rows[name] if not Path(r["video"] if isinstance(r["video"], str) else r["video"][0]).is_file()]
        assert len(missing) == n_missing, name
        assert all(r["benchmark"] == name for r in rows[name])
        items = load_eval_items(base / "data" / f"{name}.jsonl", "auto", VideoConfig())
        assert all(it.ok for it in items), (name, [it.error for it in items if not it.ok])


def test_videomme_fields(converted):
    rows = by_id(converted[1]["videomme"])
    row = rows["videomme/001-1"]
    assert row["answer"] == "C" and row["options"][2] == "C. Three."
    assert row["categories"] == {"duration": "short", "domain": "Knowledge", "sub_category": "Astronomy",
                                 "task_type": "Counting Problem"}
    assert rows["videomme/301-1"]["video"].endswith("data/bbb.mkv")        # found by stem
    assert rows["videomme/601-1"]["video"].endswith("data/gone.mp4")       # kept, listed as missing


def test_multiple_choice_answers_and_categories(converted):
    rows = converted[1]
    lvb = by_id(rows["longvideobench"])
    assert lvb["longvideobench/q4"]["answer"] == "B" and len(lvb["longvideobench/q4"]["options"]) == 4
    assert lvb["longvideobench/q5"]["answer"] == "E" and lvb["longvideobench/q5"]["categories"]["duration_group"] == "3600"
    nextqa = by_id(rows["nextqa"])
    assert nextqa["nextqa/2574374895_8"]["categories"] == {"type_group": "temporal", "type": "TN"}  # TP counted as TN
    assert nextqa["nextqa/2574374895_8"]["video"].endswith("NExTVideo/1000/2574374895.mp4")      # via the id map
    intent = by_id(rows["intentqa"])
    assert intent["intentqa/2927552798_3"]["categories"]["type"] == "TP&TN"
    assert intent["intentqa/6102982194_2"]["answer"] == "C"
    holmes = by_id(rows["video_holmes"])
    assert holmes["video_holmes/2"]["answer"] == "F" and len(holmes["video_holmes/2"]["options"]) == 6
    assert holmes["video_holmes/1"]["categories"] == {"question_type": "TCI"}
    mv = by_id(rows["mvbench"])
    assert mv["action_sequence/0"]["video_end"] == 1.5 and mv["action_sequence/0"]["categories"] == {"task": "Action Sequence"}


def test_causal_vidqa_six_rows_per_video(converted):
    rows = converted[1]["causal_vidqa"]
    assert [r["id"] for r in rows] == [f"causal_vidqa/vid_a_{k}" for k in range(6)]
    assert [r["bench"]["part"] for r in rows] == ["D", "E", "PA", "PR", "CA", "CR"]
    reason = rows[3]
    assert reason["options"][0] == "he holds a cup" and "most plausible reason" in reason["question"]
    assert reason["categories"] == {"type": "prediction"}


def test_mmvu_forms_and_captions(converted):
    rows = converted[1]
    mmvu = by_id(rows["mmvu"])
    open_row, mc_row = mmvu["mmvu/validation_0"], mmvu["mmvu/validation_1"]
    assert open_row["bench"]["only"] and open_row["solution"] == "<answer>Dolly Zoom</answer>"
    assert open_row["categories"] == {"discipline": "Humanities & Social Science", "subject": "Art",
                                      "question_form": "open-ended"}
    assert mc_row["answer"] == "B" and mc_row["categories"]["discipline"] == "Engineering"
    assert mc_row["video"].endswith("videos/Computer_Science/0.mp4")
    vcb = rows["vidcapbench"][0]
    assert vcb["bench"]["only"] and [p["sub_category"] for p in vcb["bench"]["qa"]] == ["color", "cinematography",
                                                                                        "common sense"]
    assert rows["dream1k"][0]["categories"] == {"subset": "live_action"}
    assert [r["problem_type"] for r in rows["dei_test"]] == ["DarkEventInfer"] * 2


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_wrong_root_is_one_clear_line(name, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    flags = {"dream1k": ["--annotations", str(empty / "metadata.json"), "--video_dir", str(empty)],
             "dei_test": ["--annotations", str(empty / "test.jsonl")],
             "mixvidqa_test": ["--annotations", str(empty / "test.jsonl")]}.get(name, ["--root", str(empty)])
    assert convert_main([name, *flags, "--out", str(tmp_path / "o.jsonl")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(empty) in err[0], err
    assert not (tmp_path / "o.jsonl").exists()
