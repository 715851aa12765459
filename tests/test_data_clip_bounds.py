"""Per-row clip bounds (`video_start` / `video_end`) on real mp4s whose frames carry their own index:
frames are sampled only inside the clip, exactly as qwen-vl-utils' fetch_video samples the same element,
with its sampling fps; DarkEventInfer spans inside bounds still get a black frame; bad bounds are
validation errors with line and field; the MVBench converter turns its start/end into clip bounds."""
from __future__ import annotations

import json

import numpy as np
import pytest
import qwen_vl_utils
import torch

from versavid_r1.data import (
    DataValidationError,
    VideoConfig,
    load_rows,
    load_video,
    validate_file,
    video_cache_info,
)
from versavid_r1.eval.config import EvalConfig
from versavid_r1.eval.mvbench import convert_mvbench
from versavid_r1.eval.formats import load_eval_items
from versavid_r1.video_writer import solid_color_frames, write_mp4

FPS, N = 8, 40  # 5 s
SMALL = dict(min_pixels=28 * 28, max_pixels=28 * 28 * 2)


def grey_of(index: int) -> int:
    return 20 + 5 * index


def index_of(frame: torch.Tensor) -> int:
    """The source frame index a decoded frame shows (grey level 20 + 5 * index, H.264 keeps it within ±2)."""
    value = float(frame.float().mean())
    index = round((value - 20) / 5)
    assert abs(value - grey_of(index)) < 2.0, f"grey level {value:.1f} encodes no index"
    return index


@pytest.fixture(scope="module")
def indexed_video(tmp_path_factory) -> str:
    frames = np.stack([np.full((32, 32, 3), grey_of(i), dtype=np.uint8) for i in range(N)])
    return str(write_mp4(tmp_path_factory.mktemp("clip") / "indexed.mp4", frames, fps=FPS))


pytestmark = pytest.mark.usefixtures("fresh_video_cache")


def row(video, ptype="caption", **extra):
    return {"problem": "Describe.", "solution": "<answer>x</answer>", "problem_type": ptype, "video": video, **extra}


@pytest.mark.parametrize(
    "sampling, bounds, first, last",
    [
        ({"nframes": 8}, {"video_start": 1.0, "video_end": 3.5}, 8, 28),
        ({"fps": 2.0}, {"video_start": 0.5, "video_end": 4.0}, 4, 32),
        ({"nframes": 6}, {"video_start": 2.0}, 16, 39),
        ({"nframes": 4}, {"video_end": 2.5}, 0, 20),
        ({"nframes": 4}, {"video_start": 3.0, "video_end": 9.0}, 24, 39),  # end past the video: clamped
    ],
)
def test_bounded_rows_sample_inside_the_clip_like_fetch_video(indexed_video, sampling, bounds, first, last):
    cfg = VideoConfig(**({"nframes": None} if "fps" in sampling else {}), **sampling, **SMALL)
    clip = load_video(row(indexed_video, **bounds), cfg)

    ele = {"video": indexed_video, **sampling, **bounds, **SMALL}
    if "fps" in sampling:
        ele.update(min_frames=cfg.min_frames, max_frames=cfg.max_frames)
    fetched, meta = qwen_vl_utils.fetch_video(ele, return_video_metadata=True)
    assert clip.indices == meta["frames_indices"]
    assert clip.timestamps == pytest.approx(meta["timestamps"])
    assert clip.fps == pytest.approx(meta["sample_fps"])
    assert torch.equal(clip.frames.float(), fetched)

    # Independently of qwen-vl-utils: uniform over the clip's frames, inside the bounds, the right pixels.
    count = last - first + 1
    expected_n = sampling.get("nframes") or int(count / FPS * sampling["fps"]) // 2 * 2
    assert clip.indices == np.round(np.linspace(first, last, expected_n)).astype(int).tolist()
    start, end = bounds.get("video_start", 0.0), min(bounds.get("video_end", N / FPS), N / FPS)
    assert all(start <= t <= end for t in clip.timestamps)
    assert clip.fps == pytest.approx(expected_n / (count / FPS))
    assert [index_of(f) for f in clip.frames] == clip.indices


def test_bounds_enter_the_cache_key(indexed_video):
    cfg = VideoConfig(nframes=4, cache_size=8, **SMALL)
    whole = load_video(row(indexed_video), cfg)
    part = load_video(row(indexed_video, video_start=2.0, video_end=3.0), cfg)
    assert whole.indices == [0, 13, 26, 39] and part.indices == [16, 19, 21, 24]
    assert [index_of(f) for f in part.frames] == part.indices
    assert video_cache_info().misses == 2
    assert load_video(row(indexed_video, video_start=2.0, video_end=3.0), cfg) is part


def test_dark_event_span_inside_bounds_still_gets_a_black_frame(indexed_video):
    cfg = VideoConfig(nframes=4, **SMALL)
    bounds = {"video_start": 0.5, "video_end": 4.5}  # frames 4..36: uniform picks 4, 15, 25, 36
    span = [2.5, 2.75]  # frames 20 and 21: uniform sampling steps over them
    plain = load_video(row(indexed_video, "DarkEventInfer", **bounds), cfg)
    assert plain.indices == [4, 15, 25, 36]
    clip = load_video(row(indexed_video, "DarkEventInfer", mask_span=span, **bounds), cfg)
    assert clip.indices == [4, 15, 21, 36]  # the nearest index (25) moved onto the span's last frame
    assert clip.masked == [False, False, True, False]
    assert int(clip.frames[2].max()) == 0 and span[0] <= clip.timestamps[2] < span[1]
    assert [index_of(clip.frames[k]) for k in (0, 1, 3)] == [4, 15, 36]
    assert clip.fps == plain.fps == pytest.approx(4 / (33 / FPS))


def test_bad_bounds_are_errors_with_line_and_field(tmp_path, indexed_video):
    other = write_mp4(tmp_path / "other.mp4", solid_color_frames((60, 60, 200), 16, 32, 32), fps=FPS)
    rows = [
        row(indexed_video, video_start=1, video_end=3),  # valid
        row(indexed_video, video_start=3.0, video_end=1.0),  # reversed
        row(indexed_video, "MCQA", video_start=-1.0),  # negative
        row(indexed_video, video_start=6.0),  # after the 5 s video
        row([indexed_video, str(other)], "MixVidQA", video_start=0.5, video_end=1.5),  # a pair
        row(indexed_video, "DarkEventInfer", mask_span=[1.0, 2.0], video_start=1.5, video_end=4.0),  # span out
        row(indexed_video, video_end="soon"),  # not a number
        row(indexed_video, video_start=1.0, video_end=1.1),  # one frame
        row(indexed_video, nframes=16, video_start=1.0, video_end=2.0),  # 9 frames in the clip
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    report = validate_file(path, cfg=VideoConfig(**SMALL))
    got = sorted((e.line, e.field) for e in report.errors)
    assert got == [(2, "video_start"), (3, "video_start"), (4, "video_start"), (5, "video_start"),
                   (6, "mask_span"), (7, "video_end"), (8, "video_start"), (9, "nframes")]
    messages = {e.line: e.message for e in report.errors}
    assert "reversed" in messages[2] and ">= 0" in messages[3] and "not inside the video" in messages[4]
    assert "MixVidQA pair" in messages[5] and "not inside the clip bounds" in messages[6]
    assert "fewer than 2 frames" in messages[8] and "9" in messages[9]
    assert report.lines == [1] and report.rows[0]["video_start"] == 1.0 and report.rows[0]["video_end"] == 3.0
    assert isinstance(report.rows[0]["video_start"], float)

    with pytest.raises(DataValidationError, match="line 2: video_start"):
        load_rows(path, VideoConfig(**SMALL))


def test_mvbench_bounds_become_clip_bounds_and_are_sampled(tmp_path, indexed_video):
    jdir = tmp_path / "json"
    jdir.mkdir()
    (jdir / "action_sequence.json").write_text(json.dumps([
        {"video": "indexed.mp4", "question": "What first?", "candidates": ["sat", "ran"], "answer": "ran",
         "start": 1.0, "end": 3.0},
        {"video": "indexed.mp4", "question": "Q?", "candidates": ["a", "b"], "answer": "a"},
        {"video": "indexed.mp4", "question": "Q?", "candidates": ["a", "b"], "answer": "a", "start": [1]},
    ]))
    video_dir = tmp_path / "video"
    video_dir.mkdir()
    (video_dir / "indexed.mp4").write_bytes(open(indexed_video, "rb").read())
    report = convert_mvbench([jdir / "action_sequence.json"], video_dir)
    assert len(report.rows) == 2 and len(report.skipped) == 1 and "'start' must be a number" in report.skipped[0]
    assert (report.rows[0]["video_start"], report.rows[0]["video_end"]) == (1.0, 3.0)
    assert not {"start", "end", "video_start", "video_end"} & set(report.rows[1])

    out = tmp_path / "mvbench.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in report.rows))
    vcfg = EvalConfig(min_pixels=SMALL["min_pixels"], max_pixels=SMALL["max_pixels"]).video_config()
    items = load_eval_items(out, "mcqa", vcfg)
    assert [it.ok for it in items] == [True, True]
    bounded = load_video(items[0].row, vcfg)  # paper QA eval: 1 fps, at least 4 frames
    whole = load_video(items[1].row, vcfg)
    assert bounded.indices == [8, 13, 19, 24] and all(1.0 <= t <= 3.0 for t in bounded.timestamps)
    assert [index_of(f) for f in bounded.frames] == bounded.indices
    assert whole.num_frames == 4 and whole.indices[0] == 0 and whole.indices[-1] == N - 1
