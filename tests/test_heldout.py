"""The held-out evaluation (versavid_r1.heldout_eval, versavid_r1.heldout): the controls are what they
claim (every frame grey; every question another question's video), heldout.json has the promised shape and
its figures are the evaluation's own records, and a bad held-out file stops training before it starts."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from versavid_r1.data import VideoArguments, load_video
from versavid_r1.data.demo import make_heldout_dataset
from versavid_r1.heldout import CONDITIONS, HELDOUT_FILE, format_table, summarize
from versavid_r1.heldout_eval import (
    BlindGenerator,
    HeldoutError,
    HeldoutSettings,
    chance_accuracy,
    cyclic_permutation,
    evaluate,
    grey_clip,
    load_heldout_items,
    write_shuffled,
)
from versavid_r1.stats import paired_difference_interval, wilson_interval

VIDEO = VideoArguments(nframes=4, min_pixels=3136, max_pixels=6272)  # the demo's video settings
N = 8


@pytest.fixture(scope="module")
def heldout_file(tmp_path_factory):
    return make_heldout_dataset(tmp_path_factory.mktemp("heldout"), n=N, seed=5)


def test_cyclic_permutation_moves_every_index():
    for n in (2, 3, 8, 128):
        order = cyclic_permutation(n, seed=7)
        assert sorted(order) == list(range(n)) and all(order[i] != i for i in range(n))
        seen, i = set(), 0  # one cycle through every index
        while i not in seen:
            seen.add(i)
            i = order[i]
        assert len(seen) == n
    assert cyclic_permutation(16, 1) == cyclic_permutation(16, 1) != cyclic_permutation(16, 2)


def test_shuffled_rows_keep_their_question_and_take_another_video(heldout_file, tmp_path):
    items = load_heldout_items(str(heldout_file), VIDEO)
    out = write_shuffled(items, tmp_path / "elsewhere" / "shuffled.jsonl", seed=0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    own = [it.row["video_paths"][0] for it in items]
    assert [r["video"] for r in rows] != own and sorted(r["video"] for r in rows) == sorted(own)
    for item, row in zip(items, rows):
        assert Path(row["video"]).is_absolute() and row["video"] != item.row["video_paths"][0]
        assert (row["id"], row["problem"], row["solution"]) == (item.id, item.row["problem"], item.row["solution"])
    # the file is a valid held-out file wherever it lies, and its answers no longer match its videos
    again = load_heldout_items(str(out), VIDEO)
    assert [it.id for it in again] == [it.id for it in items]


def test_grey_clip_keeps_shape_timing_and_brightness_only(heldout_file):
    (item, *_) = load_heldout_items(str(heldout_file), VIDEO)
    clip = load_video(item.row, VIDEO.video_config())
    grey = grey_clip(clip)
    assert grey.frames.shape == clip.frames.shape and grey.frames.dtype == torch.uint8
    assert grey.fps == clip.fps and grey.timestamps == clip.timestamps
    assert int(grey.frames.min()) == int(grey.frames.max()) == round(float(clip.frames.float().mean()))
    assert int(clip.frames.max()) > int(clip.frames.min())  # the original had something to see

    seen = []

    class Inner:
        calls = 3

        def prepare(self, messages, clips):
            seen.extend(clips)
            return "inputs"

        def generate(self, inputs):
            return ["text"]

    blind = BlindGenerator(Inner())
    assert blind.prepare([], [clip]) == "inputs" and blind.generate(["inputs"]) == ["text"] and blind.calls == 3
    assert torch.equal(seen[0].frames, grey.frames)


def test_a_bad_heldout_file_is_refused_with_its_lines(heldout_file, tmp_path):
    rows = [json.loads(line) for line in heldout_file.read_text().splitlines()]
    bad = heldout_file.parent / "bad.jsonl"  # beside the videos
    caption = {**rows[1], "problem_type": "caption", "solution": "<answer>a caption</answer>"}
    bad.write_text(json.dumps(rows[0]) + "\n" + json.dumps(caption) + "\n{broken\n")
    with pytest.raises(HeldoutError) as err:
        load_heldout_items(str(bad), VIDEO)
    assert "line 2: problem_type 'caption'" in str(err.value) and "line 3" in str(err.value)
    with pytest.raises(HeldoutError, match="no such file"):
        load_heldout_items(str(tmp_path / "missing.jsonl"), VIDEO)


def test_summary_has_the_promised_shape_and_the_stats_figures():
    outcomes = {"warm_start": [True, False] * 40, "final": [True] * 60 + [False] * 20,
                "blind": [True] * 20 + [False] * 60, "shuffled": [False, True, False, False] * 20}
    result = summarize(outcomes)
    for name in CONDITIONS:
        right = outcomes[name]
        assert result[name] == {"accuracy": sum(right) / 80, "ci95": list(wilson_interval(sum(right), 80)), "n": 80}
    delta, lo, hi = paired_difference_interval(outcomes["final"], outcomes["blind"])
    assert result["final_minus_blind"]["difference"] == delta == 0.5 and result["final_minus_blind"]["ci95"] == [lo, hi]
    table = format_table({**result, "chance": 0.25})
    assert "0.750" in table and "+0.500" in table and "80 multiple-choice questions" in table


def test_evaluate_writes_heldout_json_from_the_evaluation_records(tiny_dirs, heldout_file, tmp_path):
    model = tiny_dirs["qwen2_5_vl"]
    settings = HeldoutSettings(video=VIDEO, max_new_tokens=8, batch_size=4, dtype="float32", attn_implementation="sdpa")
    result = evaluate(str(heldout_file), model, model, tmp_path, settings)
    assert json.loads((tmp_path / HELDOUT_FILE).read_text()) == result
    assert set(CONDITIONS) <= set(result) and all(set(result[c]) == {"accuracy", "ci95", "n"} for c in CONDITIONS)
    assert result["chance"] == chance_accuracy(load_heldout_items(str(heldout_file), VIDEO)) == 0.25
    for name in CONDITIONS:
        records = [json.loads(line) for line in (tmp_path / "heldout" / name / "samples.jsonl").read_text().splitlines()]
        assert len(records) == N == result[name]["n"] and all(r["status"] == "ok" for r in records)
        assert result[name]["accuracy"] == sum(r["score"] == 1.0 for r in records) / N
    # the same weights as start and end: the same greedy answers
    assert result["warm_start"] == result["final"] and result["final_minus_warm_start"]["difference"] == 0.0


def test_grpo_refuses_a_bad_heldout_file_before_the_model_loads(demo_jsonl, tmp_path, capsys):
    from versavid_r1.grpo import main

    with pytest.raises(SystemExit) as exc:
        main(["--config", "configs/grpo_tiny_cpu.yaml", "--model_name_or_path", str(tmp_path / "no-model"),
              "--data_path", str(demo_jsonl), "--output_dir", str(tmp_path / "out"), "--report_to", "none",
              "--check_judges", "false", "--heldout_path", str(demo_jsonl)])  # training rows of all four types
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--heldout_path" in err and "problem_type 'DarkEventInfer' (held-out rows must be MCQA)" in err


def test_heldout_settings_take_every_video_option():
    names = {f.name for f in dataclasses.fields(VideoArguments)}
    video = VideoArguments(nframes=6, min_pixels=3136, max_pixels=3136, policy_prompt="authors", video_seed=3)
    from versavid_r1.heldout_eval import _eval_config

    cfg = _eval_config(HeldoutSettings(video=video), "m", "d.jsonl", Path("o"), "final")
    assert all(getattr(cfg, n) == getattr(video, n) for n in names)  # eval's own defaults (1 fps) do not leak in
    assert (cfg.do_sample, cfg.check_judges, cfg.data_format) == (False, False, "auto")
