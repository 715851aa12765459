"""Building DarkEventInfer and MixVidQA rows from small annotation fixtures written here, then
validating and loading the built rows with real (tiny) videos."""
from __future__ import annotations

import json

import numpy as np
import pytest

from versavid_r1.data import VideoConfig, clear_video_cache, load_rows, load_video, validate_file
from versavid_r1.data.builders import (
    BuildError,
    build_dei_rows,
    build_mixvidqa_rows,
    dei_candidates,
    load_event_annotations,
    read_records,
)
from versavid_r1.data.cli import build_dei_main, build_mix_main
from versavid_r1.video_writer import solid_color_frames, write_mp4

SMALL = VideoConfig(nframes=16, min_pixels=28 * 28, max_pixels=28 * 28 * 4)

# COIN release layout: database -> video id -> duration + annotation segments with labels.
COIN = {
    "database": {
        "vid1": {  # 20 s, four steps: the middle two have context on both sides
            "duration": 20.0, "subset": "training", "recipe_type": 1, "class": "MakeTea",
            "annotation": [
                {"id": "1", "segment": [1.0, 4.0], "label": "boil water"},
                {"id": "2", "segment": [6.0, 9.0], "label": "put tea bag in cup"},
                {"id": "3", "segment": [10.0, 13.5], "label": "pour water into cup"},
                {"id": "4", "segment": [15.0, 19.5], "label": "add sugar"},
            ],
        },
        "vid2": {  # a single step: no events before and after it
            "duration": 20.0, "subset": "training",
            "annotation": [{"id": "1", "segment": [5.0, 8.0], "label": "cut paper"}],
        },
        "vid3": {  # middle step too long for max_span
            "duration": 60.0, "subset": "testing",
            "annotation": [
                {"id": "1", "segment": [1.0, 3.0], "label": "a"},
                {"id": "2", "segment": [5.0, 40.0], "label": "b"},
                {"id": "3", "segment": [45.0, 50.0], "label": "c"},
            ],
        },
    }
}


def write_video(path, seconds, fps=4, size=32):
    # Gray frames getting brighter: never black, so masked frames are recognisable.
    n = int(seconds * fps)
    frames = np.stack([np.full((size, size, 3), 40 + (i * 150) // n, np.uint8) for i in range(n)])
    return write_mp4(path, frames, fps=fps)


def test_dei_builder_picks_an_event_with_context_and_rows_load(tmp_path):
    ann = tmp_path / "COIN.json"
    ann.write_text(json.dumps(COIN))
    videos = load_event_annotations(ann)
    assert [v.video_id for v in videos] == ["vid1", "vid2", "vid3"]

    rows, stats = build_dei_rows(videos, video_template="videos/{video_id}.mp4", max_span=10.0, seed=0)
    assert stats.rows == 1 and stats.skipped["videos without a maskable event"] == 2
    (row,) = rows
    assert row["problem_type"] == "DarkEventInfer" and row["video"] == "videos/vid1.mp4"
    assert row["mask_span"] in ([6.0, 9.0], [10.0, 13.5])
    label = {(6.0, 9.0): "put tea bag in cup", (10.0, 13.5): "pour water into cup"}[tuple(row["mask_span"])]
    assert row["solution"] == f"<answer>{label}</answer>"

    # Seeded: same seed, same pick; two per video gives both middle events.
    assert build_dei_rows(videos, video_template="videos/{video_id}.mp4", seed=0)[0] == rows
    both, _ = build_dei_rows(videos, video_template="videos/{video_id}.mp4", per_video=2, seed=0)
    assert [r["mask_span"] for r in both] == [[6.0, 9.0], [10.0, 13.5]]
    # Edge events are allowed on request (vid2's only step has 5 s of context on both sides).
    edge, _ = build_dei_rows(videos, require_neighbors=False, max_span=10.0, subset="training")
    assert {r["video"] for r in edge} == {"vid1.mp4", "vid2.mp4"}

    # The built rows validate and load against real videos: the masked span is black.
    write_video(tmp_path / "videos" / "vid1.mp4", 20)
    out = tmp_path / "dei.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in both))
    loaded = load_rows(out, SMALL)
    clear_video_cache()
    for r in loaded:
        clip = load_video(r, SMALL)
        start, end = r["mask_span"]
        for k, t in enumerate(clip.timestamps):
            assert (int(clip.frames[k].max()) == 0) == (start <= t < end)
        assert any(clip.masked)


def test_dei_candidate_reasons(tmp_path):
    ann = tmp_path / "COIN.json"
    ann.write_text(json.dumps(COIN))
    (v,) = [x for x in load_event_annotations(ann) if x.video_id == "vid3"]
    ok, why = dei_candidates(v, max_span=10.0)
    assert ok == [] and why["span length out of bounds"] == 1 and why["no annotated event before and after"] == 2


def test_dei_simple_jsonl_format_and_cli(tmp_path, capsys):
    ann = tmp_path / "events.jsonl"
    ann.write_text(
        json.dumps({"video_id": "x", "duration": 12, "segments": [
            {"start": 0.5, "end": 2, "caption": "a man enters"},
            {"start": 4, "end": 6, "caption": "he opens the box"},
            {"start": 8, "end": 11, "caption": "he leaves"}]}) + "\n"
        + json.dumps({"video_id": "y", "duration": 5, "video": "other/y.mp4", "segments": [
            {"segment": [1, 2], "sentence": "s1"}]}) + "\n"
    )
    out = tmp_path / "built" / "dei.jsonl"
    assert build_dei_main(["--annotations", str(ann), "--out", str(out), "--min_span", "1.5"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [{
        "id": "dei-x-4", "problem": rows[0]["problem"], "solution": "<answer>he opens the box</answer>",
        "problem_type": "DarkEventInfer", "video": "x.mp4", "mask_span": [4.0, 6.0],
    }]
    assert "2 inputs -> 1 rows" in capsys.readouterr().out

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"video_id": "z", "segments": []}) + "\n")
    with pytest.raises(BuildError, match="line 1"):
        load_event_annotations(bad)
    assert build_dei_main(["--annotations", str(bad), "--out", str(tmp_path / "o.jsonl")]) == 1


def test_mixvidqa_builder_rows_validate_and_interleave(tmp_path):
    write_mp4(tmp_path / "clips" / "red.mp4", solid_color_frames((220, 30, 30), 16, 32, 32), fps=8)
    write_mp4(tmp_path / "clips" / "blue.mp4", solid_color_frames((30, 30, 220), 16, 32, 32), fps=8)
    src = tmp_path / "pairs.jsonl"
    src.write_text(
        json.dumps({"clip_a": "red", "clip_b": "blue", "question": "What colour is the first clip?",
                    "answer": "red", "target": "a"}) + "\n"
        + json.dumps({"clip_a": "blue", "clip_b": "red", "question": "What does the man do?",
                      "answer": "He waves.", "target": "b", "segment_seconds": [0.5, 0.75], "id": "p2"}) + "\n"
    )
    rows, stats = build_mixvidqa_rows(read_records(src), clip_template="clips/{clip}.mp4")
    assert stats.rows == 2
    assert rows[0] == {
        "id": "mix-000000", "problem": "What colour is the first clip?", "solution": "<answer>red</answer>",
        "problem_type": "MixVidQA", "video": ["clips/red.mp4", "clips/blue.mp4"], "target": "a",
    }
    assert rows[1]["segment_seconds"] == [0.5, 0.75] and rows[1]["id"] == "p2"

    out = tmp_path / "mix.jsonl"
    assert build_mix_main(["--input", str(src), "--out", str(out), "--clip_template", "clips/{clip}.mp4",
                           "--segment_seconds", "0.5"]) == 0
    built = [json.loads(line) for line in out.read_text().splitlines()]
    assert built[0]["segment_seconds"] == 0.5 and built[1]["segment_seconds"] == [0.5, 0.75]
    assert validate_file(out).ok
    clear_video_cache()
    clip = load_video(load_rows(out, SMALL)[0], SMALL)
    assert set(clip.sources) == {0, 1}
    reds = [bool(f[0].float().mean() > f[2].float().mean()) for f in clip.frames]
    assert reds == [s == 0 for s in clip.sources]

    # shuffle_order swaps a seeded half of the pairs, keeping the target on the same clip.
    many = [(f"line {i}", {"clip_a": f"a{i}", "clip_b": f"b{i}", "question": f"q{i}", "answer": "x", "target": "a"})
            for i in range(40)]
    shuffled, _ = build_mixvidqa_rows(many, shuffle_order=True, seed=1)
    swapped = [r for r in shuffled if r["video"][0].startswith("b")]
    assert 5 < len(swapped) < 35
    assert all(r["target"] == ("b" if r["video"][0].startswith("b") else "a") for r in shuffled)
    assert build_mixvidqa_rows(many, shuffle_order=True, seed=1)[0] == shuffled


def test_mixvidqa_builder_reports_bad_records_with_lines(tmp_path):
    src = tmp_path / "pairs.jsonl"
    src.write_text(
        json.dumps({"clip_a": "a", "clip_b": "b", "question": "q", "answer": "x", "target": "a"}) + "\n"
        + json.dumps({"clip_a": "a", "clip_b": "b", "question": "q", "target": "a"}) + "\n"
        + "\n"
        + json.dumps({"clip_a": "a", "clip_b": "b", "question": "q", "answer": "x", "target": "c"}) + "\n"
        + json.dumps({"clip_a": "a", "clip_b": "b", "question": "q", "answer": "x", "target": "a",
                      "segment_seconds": 0}) + "\n"
    )
    with pytest.raises(BuildError) as exc:
        build_mixvidqa_rows(read_records(src))
    msg = str(exc.value)
    assert "line 2: missing or empty field(s): answer" in msg
    assert "line 4: target must be 'a' or 'b'" in msg
    assert "line 5: segment_seconds" in msg
    assert "line 1" not in msg
    assert build_mix_main(["--input", str(src), "--out", str(tmp_path / "o.jsonl")]) == 1
