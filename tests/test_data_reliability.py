"""A row that passes validation never crashes training later: every input that used to pass validate_data.py
and then stop a run at the step that first sampled it is now reported with its line number, validation itself
never crashes, the rows are decoded (and cached) as training will decode them, and variable-frame-rate
videos are masked by the frames' real presentation times. Real mp4s written with PyAV."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import qwen_vl_utils
import torch

from versavid_r1.data import VideoConfig, load_video, validate_file, video_cache_info
from versavid_r1.data.cli import validate_main
from versavid_r1.data.limits import RowLimits
from versavid_r1.eval.formats import load_eval_items
from versavid_r1.protocol import DEFAULT_MAX_FIELD_CHARS, MAX_PRECOMPUTED_EVENTS
from versavid_r1.video_writer import solid_color_frames, write_mp4

pytestmark = pytest.mark.usefixtures("fresh_video_cache")

CFG = dict(nframes=8, min_pixels=4 * 784, max_pixels=16 * 784)
LONG = "x" * (DEFAULT_MAX_FIELD_CHARS + 1)


def row(ptype="MCQA", video="v/good.mp4", solution="<answer>A</answer>", **extra):
    return {"problem": "What happens?", "solution": solution, "problem_type": ptype, "video": video, **extra}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability")
    v = root / "v"
    write_mp4(v / "good.mp4", solid_color_frames((200, 60, 60), 24, 32, 64), fps=8)
    write_mp4(v / "other.mp4", solid_color_frames((60, 60, 200), 24, 32, 64), fps=8)
    # Noise frames, then bytes overwritten in the middle of the media data: the header and the first frame
    # still read (so the old header-only check passed), the sampled frames do not decode.
    noise = np.random.default_rng(0).integers(0, 255, (24, 32, 64, 3), dtype=np.uint8)
    data = bytearray(write_mp4(v / "noise.mp4", noise, fps=8).read_bytes())
    middle = data.find(b"mdat") + (len(data) - data.find(b"mdat")) // 2
    data[middle:middle + 1500] = b"\x55" * 1500
    (v / "corrupt.mp4").write_bytes(bytes(data))
    write_mp4(v / "thin.mp4", solid_color_frames((90, 90, 90), 8, 10, 4000), fps=8)  # aspect ratio 400
    os.symlink(v / "loop_a.mp4", v / "loop_b.mp4")
    os.symlink(v / "loop_b.mp4", v / "loop_a.mp4")
    return root


# (raw line or row, field of the expected error or None for a valid row, words of the message)
CASES = [
    (row(), None, ""),
    # a lone carriage return between JSON tokens: one line, not two (every later line number stays right)
    ('{"problem": "What happens?",\r "solution": "<answer>A</answer>", "problem_type": "MCQA", "video": "v/good.mp4"}',
     None, ""),
    # Which check reports it depends on thread timing: decord's decoder thread reads ahead while the file is
    # opened for its info, and under load it may reach the bad bytes then ("unreadable video"); otherwise
    # the decode of the sampled frames fails. Either way the row is reported on its line, naming the file.
    (row(video="v/corrupt.mp4"), "video", ("cannot be loaded as training would", "unreadable video")),
    (row(video="v/thin.mp4"), "video", "aspect ratio"),
    (row(resized_height=3000, resized_width=3000), "resized_height", "configured max_pixels"),
    (row(max_pixels=10 ** 8), "max_pixels", "configured max_pixels"),
    (row("MixVidQA", video=["v/good.mp4", "v/other.mp4"], segment_seconds=1e-9), "segment_seconds",
     "min_segment_seconds"),
    ('{"problem": "What \\ud800 happens?", "solution": "<answer>A</answer>", "problem_type": "MCQA", '
     '"video": "v/good.mp4"}', "problem", "lone surrogate"),
    (row("DarkEventInfer", solution=f"<answer>{LONG}</answer>"), "solution", "--max-field-chars"),
    ({**row("MixVidQA"), "problem": LONG}, "problem", "--max-field-chars"),
    (row("caption", events=["e"] * (MAX_PRECOMPUTED_EVENTS + 1)), "events", "caption judge accepts"),
    (b'{"problem": "What \xff happens?", "solution": "<answer>A</answer>", "problem_type": "MCQA", '
     b'"video": "v/good.mp4"}', "json", "invalid UTF-8"),
    (row(video="v/loop_a.mp4"), "video", "symbolic links"),
    ("[" * 100_000, "json", "nested too deeply"),
    (row("DarkEventInfer", mask_span=[1.0, 2.0]), None, ""),
]


def write_cases(path: Path) -> dict[int, tuple]:
    with open(path, "wb") as f:
        for raw, _, _ in CASES:
            line = raw if isinstance(raw, bytes) else (raw if isinstance(raw, str) else json.dumps(raw)).encode()
            f.write(line + b"\n")
    return {i + 1: (fld, words) for i, (_, fld, words) in enumerate(CASES)}


def test_every_row_that_used_to_crash_training_is_reported_with_its_line(videos):
    path = videos / "data.jsonl"
    expected = write_cases(path)
    report = validate_file(path, cfg=VideoConfig(**CFG))
    got: dict[int, list] = {}
    for e in report.errors:
        got.setdefault(e.line, []).append(e)
    bad = {line: want for line, want in expected.items() if want[0] is not None}
    assert set(got) == set(bad), report.format()
    for line, (fld, words) in bad.items():
        alternatives = words if isinstance(words, tuple) else (words,)
        assert any(e.field == fld and any(w in e.message for w in alternatives) for e in got[line]), \
            (line, fld, words, got[line])
    assert report.lines == [line for line, (fld, _) in expected.items() if fld is None]
    assert report.n_rows == len(CASES)


def test_cli_prints_each_error_with_its_file_and_line(videos, capsys):
    path = videos / "cli.jsonl"
    expected = write_cases(path)
    config = videos / "train.yaml"  # the training YAML's video settings are the ones checked
    config.write_text("".join(f"{k}: {v}\n" for k, v in CFG.items()) + "learning_rate: 1.0e-6\n")
    assert validate_main([str(path), "--config", str(config), "--no_progress"]) == 1  # returned: no traceback
    out = capsys.readouterr().out
    for line, (fld, _) in expected.items():
        assert (f"{path}:{line}: error: {fld}:" in out) == (fld is not None), line
    assert "configured max_pixels 12544" in out


def test_workers_report_the_same(videos):
    write_cases(videos / "all.jsonl")
    path = videos / "workers.jsonl"  # the first five cases: two valid rows, three errors
    path.write_bytes(b"\n".join((videos / "all.jsonl").read_bytes().split(b"\n")[:5]) + b"\n")
    one = validate_file(path, cfg=VideoConfig(**CFG))
    two = validate_file(path, cfg=VideoConfig(**CFG), workers=2)
    # Same rows and fields. The wording of the corrupt mp4's error may differ: FFmpeg's threaded decoder
    # sometimes fails while opening the file, sometimes on the first sampled frame; both name the file.
    assert [(e.line, e.field) for e in two.errors] == [(e.line, e.field) for e in one.errors]
    for a, b in zip(one.errors, two.errors):
        assert a.message == b.message or ("corrupt.mp4" in a.message and "corrupt.mp4" in b.message), (a, b)
    assert len(one.errors) == 3 and two.lines == one.lines == [1, 2] and two.rows == one.rows


def test_the_loader_names_the_file_and_refuses_unbounded_overrides(videos):
    cfg = VideoConfig(**CFG, video_root=str(videos))
    with pytest.raises(ValueError, match=r"thin\.mp4.*aspect ratio"):
        load_video(row(video="v/thin.mp4"), cfg)
    with pytest.raises(ValueError, match="configured max_pixels"):
        load_video(row(resized_height=3000, resized_width=3000), cfg)
    with pytest.raises(ValueError, match="min_segment_seconds"):
        load_video(row("MixVidQA", video=["v/good.mp4", "v/other.mp4"], segment_seconds=1e-9), cfg)
    with pytest.raises(qwen_vl_utils.VideoReadError, match="corrupt.mp4"):
        load_video(row(video="v/corrupt.mp4"), cfg)


def test_limits_are_the_configured_ones(videos):
    path = videos / "judge.jsonl"
    path.write_text(json.dumps(row("DarkEventInfer", solution="<answer>" + "y" * 100 + "</answer>")) + "\n")
    assert validate_file(path, cfg=VideoConfig(**CFG)).ok
    report = validate_file(path, cfg=VideoConfig(**CFG), limits=RowLimits(judge_max_field_chars=50))
    assert [e.field for e in report.errors] == ["solution"] and "(50," in report.errors[0].message
    # 8 frames of 32x64 sized up to 56x84 (min_pixels 4 tokens): 4 temporal x (2 x 3) patches = 24 video tokens
    report = validate_file(path, cfg=VideoConfig(**CFG), limits=RowLimits(max_prompt_length=24))
    assert [e.field for e in report.errors] == ["video"] and "is 24 tokens" in report.errors[0].message
    assert validate_file(path, cfg=VideoConfig(**CFG), limits=RowLimits(max_prompt_length=25)).ok


def test_validation_decodes_like_training_and_training_reuses_the_clip(videos, monkeypatch):
    path = videos / "cache.jsonl"
    path.write_text(json.dumps(row()) + "\n" + json.dumps(row("DarkEventInfer", mask_span=[1.0, 2.0])) + "\n")
    decoded = []
    real = qwen_vl_utils.read_video_frames
    monkeypatch.setattr(qwen_vl_utils, "read_video_frames",
                        lambda *a, **kw: decoded.append(a[0]) or real(*a, **kw))
    cfg = VideoConfig(**CFG)
    report = validate_file(path, cfg=cfg)
    assert report.ok and len(decoded) == 2 and video_cache_info().size == 2  # each row decoded once, cached
    clips = [load_video(r, cfg) for r in report.rows]  # what the trainer asks for
    assert len(decoded) == 2 and video_cache_info().hits == 2
    assert clips[1].masked == [8 <= i < 16 for i in clips[1].indices]


def test_a_check_that_fails_unexpectedly_is_the_rows_error(videos, monkeypatch):
    from versavid_r1.data import schema

    path = videos / "surprise.jsonl"
    path.write_text(json.dumps(row()) + "\n" + json.dumps(row("caption")) + "\n")

    def broken(r, limits):
        if r["problem_type"] == "caption":
            raise ZeroDivisionError("a bug in a check")
        return []

    monkeypatch.setattr(schema, "judge_field_errors", broken)
    report = validate_file(path, cfg=VideoConfig(**CFG))
    assert [(e.line, e.field) for e in report.errors] == [(2, "row")]
    assert "ZeroDivisionError: a bug in a check" in report.errors[0].message and report.lines == [1]


def test_a_data_file_in_a_symlink_loop_is_reported(tmp_path, capsys):
    os.symlink(tmp_path / "b.jsonl", tmp_path / "a.jsonl")
    os.symlink(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    assert validate_main([str(tmp_path / "a.jsonl")]) == 1
    assert "symlink loop" in capsys.readouterr().out


def test_evaluation_reads_a_file_with_an_invalid_byte(videos):
    path = videos / "eval.jsonl"
    path.write_bytes(json.dumps(row()).encode() + b"\n\xff\xfe\n" + json.dumps(row()).replace("A<", "B<").encode())
    items = load_eval_items(path, "internal", VideoConfig(**CFG))
    assert [it.line for it in items] == [1, 2, 3] and items[0].ok and items[2].ok
    assert "invalid UTF-8" in items[1].error


# --- variable frame rate ---------------------------------------------------------------------------------
VFR_TIMES = [0.5 * i for i in range(12)] + [6.0 + 0.1 * i for i in range(30)]  # 2 fps, then 10 fps


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_vfr_mask_span_blacks_out_the_frames_really_shown_in_it(tmp_path, backend):
    frames = np.stack([np.full((32, 64, 3), 6 * i, np.uint8) for i in range(len(VFR_TIMES))])
    path = write_mp4(tmp_path / "vfr.mp4", frames, fps=10, times=VFR_TIMES)
    span = [6.5, 7.5]
    clip = load_video(row("DarkEventInfer", video=str(path), mask_span=span),
                      VideoConfig(nframes=16, min_pixels=4 * 784, max_pixels=16 * 784, backend=backend))
    real = [VFR_TIMES[i] for i in clip.indices]
    assert clip.timestamps == pytest.approx(real, abs=1e-3)
    assert clip.masked == [span[0] <= t < span[1] for t in clip.timestamps] and any(clip.masked)
    for frame, index, masked in zip(clip.frames, clip.indices, clip.masked):
        level = frame.float().mean().item()
        assert (level == 0) if masked else abs(level - 6 * index) <= 3, (index, masked, level)
