"""MixVidQA interleaving on real mp4s: the a/b segment pattern, one common frame size, only the
sampled frames decoded, and a deterministic segment length drawn from the row and the seed."""
from __future__ import annotations

import math

import pytest
import qwen_vl_utils
import torch

from versavid_r1.data import VideoConfig, clear_video_cache, load_video
from versavid_r1.data.proxy import draw_segment_seconds, mix_timeline
from versavid_r1.video_writer import solid_color_frames, write_mp4

RED, BLUE = (220, 30, 30), (30, 30, 220)
SMALL = dict(min_pixels=28 * 28, max_pixels=28 * 28 * 4)


pytestmark = pytest.mark.usefixtures("fresh_video_cache")


@pytest.fixture
def clips(tmp_path):
    # a: red, 4 s; b: blue, 3 s and a different frame size (both must come out at one size).
    a = write_mp4(tmp_path / "red.mp4", solid_color_frames(RED, 32, 32, 32), fps=8)
    b = write_mp4(tmp_path / "blue.mp4", solid_color_frames(BLUE, 24, 48, 64), fps=8)
    return str(a), str(b)


@pytest.fixture
def decode_spy(monkeypatch):
    """Wraps the real qwen_vl_utils.read_video_frames and records how many frames each call returned."""
    calls: list[tuple[str, int]] = []
    real = qwen_vl_utils.read_video_frames

    def spy(path, indices, backend=None, **kwargs):
        frames = real(path, indices, backend=backend, **kwargs)
        calls.append((str(path), int(frames.shape[0])))
        return frames

    monkeypatch.setattr(qwen_vl_utils, "read_video_frames", spy)
    return calls


def mix_row(a, b, **extra):
    return {"problem": "q", "solution": "<answer>x</answer>", "problem_type": "MixVidQA", "video": [a, b], **extra}


def colour_of(frame: torch.Tensor) -> str:
    r, g, b = (float(c) for c in frame.float().mean(dim=(1, 2)))
    assert max(abs(r - RED[0]), abs(b - RED[2])) < 25 or max(abs(r - BLUE[0]), abs(b - BLUE[2])) < 25
    return "a" if r > b else "b"


def expected_pattern(durations, seg, nframes):
    """Independent of the loader: walk a, b, a, b, … segments of `seg` seconds (the other clip
    continues when one runs out) and read off the clip at the centre of each of nframes bins."""
    left = list(durations)
    pieces, turn = [], 0
    while left[0] > 1e-9 or left[1] > 1e-9:
        c = turn % 2 if (left[0] > 1e-9 and left[1] > 1e-9) else (0 if left[0] > 1e-9 else 1)
        length = min(seg, left[c]) if (left[0] > 1e-9 and left[1] > 1e-9) else left[c]
        pieces.append(("ab"[c], length))
        left[c] -= length
        turn += 1
    total = sum(durations)
    out = []
    for k in range(nframes):
        t, start = (k + 0.5) * total / nframes, 0.0
        for name, length in pieces:
            if t < start + length:
                out.append(name)
                break
            start += length
    return out


def test_interleaving_colours_follow_the_segment_pattern_and_only_T_frames_are_decoded(clips, decode_spy):
    a, b = clips
    cfg = VideoConfig(nframes=14, **SMALL)
    clip = load_video(mix_row(a, b, segment_seconds=1.0), cfg)

    pattern = expected_pattern([4.0, 3.0], 1.0, 14)
    assert pattern == list("aabbaabbaabbaa")  # a[0,1) b[0,1) a[1,2) b[1,2) a[2,3) b[2,3) a[3,4)
    assert [colour_of(f) for f in clip.frames] == pattern
    assert ["ab"[s] for s in clip.sources] == pattern
    assert clip.segment_seconds == 1.0
    assert math.isclose(clip.fps, 14 / 7.0)

    assert clip.frames.shape[0] == 14 and clip.frames.dtype == torch.uint8
    expected_size = qwen_vl_utils.video_target_size(32, 32, 14, SMALL)
    assert tuple(clip.frames.shape[-2:]) == tuple(expected_size)  # clip b (48x64) resized to clip a's size
    assert sum(n for _, n in decode_spy) == 14  # cost grows with T, not with the clips' length
    assert {p for p, _ in decode_spy} == {a, b}

    # Source timestamps run forward inside each clip and stay inside it.
    for c, dur in ((0, 4.0), (1, 3.0)):
        ts = [t for t, s in zip(clip.timestamps, clip.sources) if s == c]
        assert ts == sorted(ts) and all(0 <= t < dur for t in ts)


def test_longer_clip_continues_alone(clips):
    a, b = clips
    # The pair in the other order: first the 3 s blue clip, then the 4 s red one, which plays alone
    # for its last second.
    clip = load_video(mix_row(b, a, segment_seconds=0.5), VideoConfig(nframes=14, **SMALL))
    pattern = expected_pattern([3.0, 4.0], 0.5, 14)
    assert ["ab"[s] for s in clip.sources] == pattern
    assert ["b" if colour_of(f) == "a" else "a" for f in clip.frames] == pattern  # red is clip index 1 here
    assert pattern[-2:] == ["b", "b"]


def test_range_is_drawn_once_per_row_deterministically(clips):
    a, b = clips
    row = mix_row(a, b)  # no segment_seconds: the config's range 1.5-2.0 s
    cfg = VideoConfig(nframes=14, seed=42, **SMALL)
    first = load_video(row, cfg)
    clear_video_cache()
    again = load_video(dict(row), cfg)
    assert 1.5 <= first.segment_seconds <= 2.0
    assert first.segment_seconds == again.segment_seconds
    assert torch.equal(first.frames, again.frames) and first.sources == again.sources
    assert [colour_of(f) for f in first.frames] == expected_pattern([4.0, 3.0], first.segment_seconds, 14)

    other_seed = load_video(row, VideoConfig(nframes=14, seed=7, **SMALL))
    assert other_seed.segment_seconds != first.segment_seconds
    assert [colour_of(f) for f in other_seed.frames] == expected_pattern([4.0, 3.0], other_seed.segment_seconds, 14)


def test_segment_draw_is_a_stable_hash_not_python_hash():
    # Pinned value: SHA-256 of the row's video and range plus the seed, so every process, run and
    # machine (whatever PYTHONHASHSEED) draws the same segment length.
    v = draw_segment_seconds(["clips/a.mp4", "clips/b.mp4"], [1.5, 2.0], 42)
    assert v == pytest.approx(1.5 + 0.5 * _pinned_fraction(), abs=1e-12)
    assert v == pytest.approx(1.8104341220136764, abs=1e-12)
    assert draw_segment_seconds(["clips/a.mp4", "clips/b.mp4"], 1.75, 42) == 1.75
    values = {draw_segment_seconds([f"{i}.mp4", "b.mp4"], [1.5, 2.0], 42) for i in range(50)}
    assert len(values) == 50 and all(1.5 <= x <= 2.0 for x in values)


def _pinned_fraction() -> float:
    import hashlib
    import json

    material = json.dumps(
        {"video": ["clips/a.mp4", "clips/b.mp4"], "segment_seconds": [1.5, 2.0], "seed": 42}, sort_keys=True
    )
    return int.from_bytes(hashlib.sha256(material.encode()).digest()[:8], "big") / 2.0**64


def test_timeline_segments():
    tl = mix_timeline([4.0, 3.0], 1.5)
    assert [(s.clip, s.src_start, s.src_end, s.virt_start) for s in tl] == [
        (0, 0.0, 1.5, 0.0), (1, 0.0, 1.5, 1.5), (0, 1.5, 3.0, 3.0), (1, 1.5, 3.0, 4.5), (0, 3.0, 4.0, 6.0),
    ]
    tl = mix_timeline([1.0, 5.0], 2.0)  # a runs out first: b continues in one piece
    assert [(s.clip, s.src_start, s.src_end) for s in tl] == [(0, 0.0, 1.0), (1, 0.0, 5.0)]
