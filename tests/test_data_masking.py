"""DarkEventInfer masking on real mp4s: pixels inside the span are black, the rest untouched, and a
short span in a long video is never stepped over by uniform sampling."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from qwen_vl_utils import sample_video_frames

from versavid_r1.data import VideoConfig, clear_video_cache, load_video
from versavid_r1.data.proxy import ensure_index_in_range, span_frame_range
from versavid_r1.video_writer import write_mp4

SMALL = dict(min_pixels=28 * 28, max_pixels=28 * 28 * 4)


def ramp_video(path, n, fps, h, w):
    """Frame i: a horizontal gradient whose brightness grows with i (never black, every frame differs)."""
    x = np.linspace(0, 60, w, dtype=np.float32)[None, :, None]
    frames = [np.broadcast_to(40 + 0.6 * i + x, (h, w, 3)).astype(np.uint8) for i in range(n)]
    return write_mp4(path, np.stack(frames), fps=fps)


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_video_cache()
    yield
    clear_video_cache()


def test_frames_inside_span_are_black_and_others_equal_the_unmasked_read(tmp_path):
    video = ramp_video(tmp_path / "ramp.mp4", n=32, fps=8, h=48, w=64)
    cfg = VideoConfig(nframes=16, **SMALL)
    base = {"problem": "q", "solution": "<answer>x</answer>", "problem_type": "DarkEventInfer", "video": str(video)}
    span = [1.5, 2.5]
    masked = load_video({**base, "mask_span": span}, cfg)
    plain = load_video(base, cfg)

    assert masked.indices == plain.indices  # uniform sampling already hits the span: nothing moved
    assert masked.frames.shape == plain.frames.shape and masked.frames.dtype == torch.uint8
    inside = [span[0] <= t < span[1] for t in masked.timestamps]
    assert inside == masked.masked
    assert 2 <= sum(inside) < len(inside)
    for k, is_in in enumerate(inside):
        if is_in:
            assert int(masked.frames[k].max()) == 0, f"frame {k} at {masked.timestamps[k]} s is not black"
            assert int(plain.frames[k].min()) > 20, "the unmasked frame was not black to begin with"
        else:
            assert torch.equal(masked.frames[k], plain.frames[k]), f"frame {k} outside the span changed"


def test_one_second_span_in_a_sixty_second_video_yields_a_black_frame(tmp_path):
    fps, n = 4, 240
    video = ramp_video(tmp_path / "long.mp4", n=n, fps=fps, h=32, w=32)
    span = [30.2, 31.2]
    first, last = span_frame_range(span, fps, n)
    uniform = sample_video_frames({"nframes": 16}, n, fps)
    assert not any(first <= i <= last for i in uniform), "test premise: uniform sampling misses the span"

    cfg = VideoConfig(nframes=16, **SMALL)
    base = {"problem": "q", "solution": "<answer>x</answer>", "problem_type": "DarkEventInfer", "video": str(video)}
    clip = load_video({**base, "mask_span": span}, cfg)
    plain = load_video(base, cfg)

    assert clip.num_frames == 16
    black = [k for k in range(16) if int(clip.frames[k].max()) == 0]
    assert len(black) == 1
    assert span[0] <= clip.timestamps[black[0]] < span[1]
    # Only the index nearest to the span moved (onto the span's nearest frame); the others did not.
    moved = [k for k in range(16) if clip.indices[k] != uniform[k]]
    assert moved == black
    for k in range(16):
        if k not in black:
            assert torch.equal(clip.frames[k], plain.frames[k])
            assert int(clip.frames[k].min()) > 20


@pytest.mark.parametrize(
    "indices, rng, expected",
    [
        ([0, 10, 20], (2, 5), [2, 10, 20]),  # nearest sample is before: moved onto the span's first frame
        ([0, 10, 20], (7, 8), [0, 8, 20]),  # nearest sample is after: moved onto the span's last frame
        ([0, 10, 20], (12, 17), [0, 12, 20]),
        ([0, 10, 20], (4, 6), [4, 10, 20]),  # a tie goes to the sample before the span
        ([0, 10, 20], (0, 0), [0, 10, 20]),  # already inside
        ([5, 10, 20], (0, 2), [2, 10, 20]),  # span before every sample
        ([0, 10, 20], (22, 30), [0, 10, 22]),  # span after every sample
    ],
)
def test_snap_into_span_keeps_order_and_moves_one_index(indices, rng, expected):
    out = ensure_index_in_range(indices, rng)
    assert out == expected
    assert out == sorted(set(out))


def test_span_frame_range_is_half_open():
    assert span_frame_range([1.0, 2.0], 4, 100) == (4, 7)  # 1.0, 1.25, 1.5, 1.75 s; 2.0 s is outside
    assert span_frame_range([1.1, 1.2], 4, 100) is None  # between two frames
    assert span_frame_range([2.0, 1.0], 4, 100) is None
    assert span_frame_range([24.0, 30.0], 4, 100) == (96, 99)  # clamped to the video
