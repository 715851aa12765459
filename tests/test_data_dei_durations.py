"""DarkEventInfer building against the real videos: when a video file is at hand its own duration (frames /
fps, read through the loader's info cache) replaces the annotated one; events that end after the video are
reported and never masked, and a video without a file is built from its annotation and counted."""
from __future__ import annotations

import json

import numpy as np

from versavid_r1.data import validate_file
from versavid_r1.data.builders import PAST_REAL_END, RealDuration, build_dei_rows, load_event_annotations
from versavid_r1.data.cli import build_dei_main
from versavid_r1.video_writer import write_mp4

FPS = 4


def _video(path, seconds):
    n = int(seconds * FPS)
    write_mp4(path, np.stack([np.full((32, 32, 3), 60 + 3 * i, np.uint8) for i in range(n)]), fps=FPS)


def _seg(start, end, caption):
    return {"start": start, "end": end, "caption": caption}


ANNOTATIONS = [
    # Annotated 20 s, but the file holds 8 s: "d" and "e" are not in it.
    {"video_id": "short", "duration": 20, "segments": [
        _seg(1, 2, "a"), _seg(3, 5, "b"), _seg(6, 7, "c"), _seg(10, 12, "d"), _seg(14, 16, "e")]},
    {"video_id": "fine", "duration": 12, "segments": [_seg(1, 2, "x"), _seg(4, 6, "y"), _seg(8, 9, "z")]},
    {"video_id": "absent", "duration": 12, "segments": [_seg(1, 2, "p"), _seg(4, 6, "q"), _seg(8, 9, "r")]},
]


def _setup(tmp_path):
    ann = tmp_path / "events.jsonl"
    ann.write_text("".join(json.dumps(a) + "\n" for a in ANNOTATIONS))
    _video(tmp_path / "short.mp4", 8)
    _video(tmp_path / "fine.mp4", 12)
    return ann


def test_spans_are_checked_against_the_real_video(tmp_path, fresh_video_cache):
    ann = _setup(tmp_path)
    videos = load_event_annotations(ann)
    durations = {"short.mp4": RealDuration(8.0, FPS), "fine.mp4": RealDuration(12.0, FPS)}

    rows, stats = build_dei_rows(videos, per_video=5, real_duration=durations.get)
    # short: d and e lie past 8 s; c has no event after it inside the video; b is the only maskable event.
    spans = {r["video"]: [] for r in rows}
    for r in rows:
        spans[r["video"]].append(r["mask_span"])
    assert spans == {"short.mp4": [[3.0, 5.0]], "fine.mp4": [[4.0, 6.0]], "absent.mp4": [[4.0, 6.0]]}
    assert (stats.checked, stats.unchecked, stats.skipped[PAST_REAL_END]) == (2, 1, 2)
    assert len(stats.unfit) == 2 and all(line.startswith("short (short.mp4): event [1") for line in stats.unfit)
    assert "'d' ends after the video (8.000 s; annotated duration 20 s)" in stats.unfit[0]

    # Trusting the annotation instead masks events the video does not have; validation then refuses them.
    trusted, _ = build_dei_rows(videos, per_video=5)
    assert [10.0, 12.0] in [r["mask_span"] for r in trusted if r["video"] == "short.mp4"]
    def validate(name, built):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in built if r["video"] != "absent.mp4"))
        return validate_file(path)

    assert validate("checked.jsonl", rows).ok
    trusted_report = validate("trusted.jsonl", trusted)
    assert any(e.field == "mask_span" and "outside the video's duration" in e.message for e in trusted_report.errors)


def test_cli_reads_real_durations_under_the_video_root(tmp_path, capsys, fresh_video_cache):
    ann = _setup(tmp_path)
    out = tmp_path / "built" / "dei.jsonl"
    assert build_dei_main(["--annotations", str(ann), "--out", str(out), "--video_root", str(tmp_path),
                           "--per_video", "5"]) == 0
    printed = capsys.readouterr().out
    assert f"real durations: 2 videos opened under {tmp_path}, 1 not found there" in printed
    assert "2 annotated events end after their video and were not used" in printed
    assert f"{PAST_REAL_END}: 2" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["mask_span"] for r in rows if r["video"] == "short.mp4"] == [[3.0, 5.0]]
