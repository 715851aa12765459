"""The two proxy tasks, made at load time from source videos and time annotations (docs/method.md).

DarkEventInfer — a frame is *inside* `mask_span = [start, end]` when its source timestamp `t` (its
presentation time: `index / fps` for constant-frame-rate video, the real time of each frame for
variable-frame-rate video) satisfies `start <= t < end` (half-open, so two adjacent events never
share a frame).
Inside frames become all zeros; every other frame is left untouched. Uniform sampling of a long video
can step over a short span, and then the model would never see the gap: when no sampled index falls
inside the span, the sampled index *nearest* to the span is moved to the nearest in-span frame (the
span's first frame if it came from before the span, its last frame if from after). Sampling order
and uniqueness are preserved and every other index stays where uniform sampling put it.

MixVidQA — two clips `a` and `b` are laid on a *virtual timeline* of alternating segments
`a, b, a, b, …`, each `segment_seconds` long (a `[min, max]` range is drawn once per row from a
SHA-256 of the row's `video` and `segment_seconds` plus the data seed, so it is the same in every
process and run, unlike Python's salted `hash()`). When one clip runs out the other continues to its
end. A clip's length is `total_frames / fps`. T frames are sampled at the centres of T equal bins of
the virtual timeline; each sample is the source frame shown at that moment (`floor(t * fps)`, or by
the real frame times of a variable-frame-rate clip). Only those frames are decoded. A frame's time in the
interleaved video (what Qwen3-VL / Qwen3.5 print before each frame group) is that of the frame on screen at its
sampled moment in the interleaved video rendered at clip a's frame rate (`shown_indices`), as for a pre-rendered
MixVidQA file.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import qwen_vl_utils as qvu

from versavid_r1.data.config import SegmentSpec, segment_range

_EPS = 1e-9


# ------------------------------------------------------------------ DarkEventInfer ---------------
def span_frame_range(
    span: Sequence[float], fps: float, total_frames: int, frame_times: Optional[Sequence[float]] = None
) -> Optional[tuple[int, int]]:
    """Inclusive `(first, last)` source frame indices whose timestamps lie in `[start, end)`, or None.
    `frame_times`: the real frame times of a variable-frame-rate video (VideoInfo.frame_times)."""
    start, end = float(span[0]), float(span[1])
    if not end > start:
        return None
    first = max(0, qvu.first_frame_from(start, fps, total_frames, frame_times))
    last = min(total_frames, qvu.first_frame_from(end, fps, total_frames, frame_times)) - 1
    return (first, last) if first <= last else None


def ensure_index_in_range(indices: Sequence[int], frame_range: tuple[int, int]) -> list[int]:
    """Sorted unique `indices` with at least one inside `frame_range` (see the module docstring)."""
    first, last = frame_range
    out = list(indices)
    if not out or any(first <= i <= last for i in out):
        return out
    before = [k for k, i in enumerate(out) if i < first]
    after = [k for k, i in enumerate(out) if i > last]
    k_before = before[-1] if before else None
    k_after = after[0] if after else None
    if k_after is None or (k_before is not None and first - out[k_before] <= out[k_after] - last):
        out[k_before] = first
    else:
        out[k_after] = last
    return out


# ------------------------------------------------------------------ MixVidQA ---------------------
def draw_segment_seconds(video: object, spec: SegmentSpec, seed: int) -> float:
    """The segment length of one row: `spec`'s value, or a deterministic draw from its range."""
    lo, hi = segment_range(spec)
    if lo == hi:
        return lo
    material = json.dumps(
        {"video": video, "segment_seconds": [lo, hi], "seed": int(seed)}, sort_keys=True, ensure_ascii=True
    )
    digest = hashlib.sha256(material.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return lo + u * (hi - lo)


@dataclass(frozen=True)
class Segment:
    """One piece of the virtual timeline: clip `clip` from `src_start` to `src_end` seconds, shown
    from virtual time `virt_start`."""

    clip: int
    src_start: float
    src_end: float
    virt_start: float

    @property
    def virt_end(self) -> float:
        return self.virt_start + (self.src_end - self.src_start)


def mix_timeline(durations: Sequence[float], segment_seconds: float) -> list[Segment]:
    """Alternate `a, b, a, b, …` segments of `segment_seconds`; the longer clip finishes alone."""
    if segment_seconds <= 0:
        raise ValueError("segment_seconds must be > 0")
    pos = [0.0 for _ in durations]
    virt = 0.0
    out: list[Segment] = []
    turn = 0
    n = len(durations)
    while True:
        live = [c for c in range(n) if durations[c] - pos[c] > _EPS]
        if not live:
            break
        if len(live) == 1:
            c = live[0]
            length = durations[c] - pos[c]
        else:
            c = turn % n
            turn += 1
            if durations[c] - pos[c] <= _EPS:
                continue
            length = min(segment_seconds, durations[c] - pos[c])
        seg = Segment(c, pos[c], pos[c] + length, virt)
        # Merge with the previous piece of the same clip (happens once the other clip ran out).
        if out and out[-1].clip == c and abs(out[-1].src_end - seg.src_start) < _EPS:
            prev = out[-1]
            out[-1] = Segment(c, prev.src_start, seg.src_end, prev.virt_start)
        else:
            out.append(seg)
        pos[c] += length
        virt += length
    return out


def sample_times(virtual_duration: float, nframes: int) -> list[float]:
    """Centres of `nframes` equal bins of `[0, virtual_duration)`."""
    step = virtual_duration / nframes
    return [(k + 0.5) * step for k in range(nframes)]


def shown_indices(moments: Sequence[float], fps: float) -> list[int]:
    """Index of the frame on screen at each virtual moment in the interleaved video rendered at `fps` (so its time
    is index / fps, as a pre-rendered MixVidQA file sampled at those moments would give)."""
    return [int(math.floor(t * fps + _EPS)) for t in moments]


def locate(timeline: Sequence[Segment], t: float) -> tuple[int, float]:
    """`(clip, source seconds)` shown at virtual time `t` (segments are half-open `[start, end)`)."""
    for seg in timeline:
        if seg.virt_start - _EPS <= t < seg.virt_end - _EPS:
            return seg.clip, seg.src_start + (t - seg.virt_start)
    last = timeline[-1]
    return last.clip, last.src_end


def source_frame(src_time: float, fps: float, total_frames: int, frame_times: Optional[Sequence[float]] = None) -> int:
    """Index of the source frame displayed at `src_time` seconds (by the real frame times when given)."""
    return qvu.frame_shown_at(src_time, fps, total_frames, frame_times)
