"""`VideoConfig`: how a row's video is sampled and sized (defaults = the paper's recipe, docs/method.md).

Every limit that decides what the policy sees lives here, explicit, instead of being hard-coded in a
vendored qwen-vl-utils (the most common cause of irreproducible numbers in peer repos). A row may
override the sampling and pixel keys for itself, and bound its video to a clip (`ROW_VIDEO_OVERRIDES`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence, Union

# Keys a row may carry to override its own sampling / sizing (same meaning as in qwen-vl-utils'
# video content part). `nframes` and `fps` are exclusive: a row sets at most one of them.
# `video_start` / `video_end` (seconds) bound a single video to a clip: frames are sampled inside it.
ROW_VIDEO_OVERRIDES: tuple[str, ...] = (
    "nframes",
    "fps",
    "min_frames",
    "max_frames",
    "min_pixels",
    "max_pixels",
    "total_pixels",
    "resized_height",
    "resized_width",
    "video_start",
    "video_end",
)
CLIP_BOUND_KEYS: tuple[str, ...] = ("video_start", "video_end")

# How a video's time is encoded in Qwen2.5-VL's temporal position ids (`second_per_grid_ts`):
# - "absolute": the real sampling rate, seconds per temporal grid = temporal_patch_size / sampled fps (a
#   16-frame clip of 5 s: 0.625 s per grid, of 60 s: 7.5 s), as Qwen2.5-VL was pretrained;
# - "reference": the authors' code, which called the processor without fps, so every video got
#   REFERENCE_SECONDS_PER_GRID whatever its length.
TIME_ENCODINGS: tuple[str, ...] = ("absolute", "reference")
REFERENCE_SECONDS_PER_GRID = 1.0


def time_fps(sampled_fps: float, time_encoding: str, temporal_patch_size: int) -> float:
    """The frame rate the processor (and a vLLM request) is given for a clip, from which Qwen2.5-VL
    derives `second_per_grid_ts = temporal_patch_size / fps`: the clip's real sampling fps (`absolute`),
    or the rate that makes every grid `REFERENCE_SECONDS_PER_GRID` long (`reference`)."""
    if time_encoding == "reference":
        return float(temporal_patch_size) / REFERENCE_SECONDS_PER_GRID
    if time_encoding == "absolute":
        return float(sampled_fps)
    raise ValueError(f"time_encoding must be one of {TIME_ENCODINGS}, got {time_encoding!r}")

# Seconds one video read (open, header, sampled frames) may take before it is given up (a hung mount).
DEFAULT_READ_TIMEOUT_S = 120.0

SegmentSpec = Union[float, int, Sequence[float]]


def segment_range(spec: SegmentSpec) -> tuple[float, float]:
    """`segment_seconds` as a `(min, max)` pair: a number `x` means `(x, x)`.

    Raises ValueError for anything else than a positive finite number or an ordered pair of them.
    """
    if isinstance(spec, bool):
        raise ValueError("segment_seconds must be a number or a [min, max] pair, got a boolean")
    if isinstance(spec, (int, float)):
        lo = hi = float(spec)
    elif isinstance(spec, (list, tuple)) and len(spec) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec
    ):
        lo, hi = float(spec[0]), float(spec[1])
    else:
        raise ValueError(f"segment_seconds must be a number or a [min, max] pair, got {spec!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0:
        raise ValueError(f"segment_seconds must be positive and finite, got {spec!r}")
    if lo > hi:
        raise ValueError(f"segment_seconds range is reversed: min {lo} > max {hi}")
    return lo, hi


@dataclass
class VideoConfig:
    """Sampling and sizing of videos; defaults follow the paper (16 frames, 128·28·28 to 196·28·28 px).

    - `nframes` / `fps`: uniform sampling of `nframes` frames, or `fps` frames per second clamped to
      `[min_frames, max_frames]` (qwen-vl-utils' rules, rounded to a multiple of 2). When `fps` is set
      it wins and `nframes` is ignored, so `VideoConfig(fps=1.0)` is enough for fps sampling.
    - `min_pixels` / `max_pixels` / `total_pixels`: the per-frame pixel budget (`total_pixels` caps
      frames × pixels); frames are resized like qwen-vl-utils' `fetch_video` does.
    - `video_root`: folder that relative `video` paths are resolved against. `None` means: the JSONL's
      folder when rows come from `load_rows`, else the current directory.
    - `segment_seconds`: MixVidQA segment length (a number or a `[min, max]` range; paper: 1.5–2 s).
    - `seed`: the data seed; with the row it decides the MixVidQA segment length drawn from the range.
    - `cache_size` / `cache_bytes`: decoded clips kept per process (LRU), at most this many and at
      most this many bytes of frames, so that validation and a step's generation and loss passes
      decode each video once; 0 disables the cache.
    - `min_segment_seconds`: the shortest MixVidQA segment a row or the config may ask for (the
      interleaved timeline holds duration / segment pieces).
    - `backend`: qwen-vl-utils video backend (`None` = its default), `image_patch_size` 14 for
      Qwen2/2.5-VL, 16 for Qwen3-VL / Qwen3.5 (resize factor = patch × merge = 28 / 32).
    - `time_encoding`: `absolute` (real seconds per temporal grid) or `reference` (1.0 s per grid for
      every video, the authors' inputs); see `TIME_ENCODINGS`. Training and evaluation read it alike.
    - `read_timeout_s`: the deadline of one video read (opening, header and sampled frames); a read that
      has not returned by then fails like an unreadable file (`versavid_r1.data.read_deadline`).
    """

    nframes: Optional[int] = 16
    fps: Optional[float] = None
    min_frames: int = 4
    max_frames: int = 768
    min_pixels: int = 128 * 28 * 28
    max_pixels: int = 196 * 28 * 28
    total_pixels: Optional[int] = None
    video_root: Optional[str] = None
    segment_seconds: Any = field(default=(1.5, 2.0))
    seed: int = 42
    cache_size: int = 32
    cache_bytes: int = 1 << 30
    min_segment_seconds: float = 0.25
    backend: Optional[str] = None
    image_patch_size: int = 14
    time_encoding: str = "absolute"
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S

    def __post_init__(self) -> None:
        if not (isinstance(self.read_timeout_s, (int, float)) and math.isfinite(self.read_timeout_s)
                and self.read_timeout_s > 0):
            raise ValueError(f"VideoConfig: read_timeout_s must be a finite number > 0, got {self.read_timeout_s!r}")
        if self.time_encoding not in TIME_ENCODINGS:
            raise ValueError(f"VideoConfig: time_encoding must be one of {TIME_ENCODINGS}, got {self.time_encoding!r}")
        if self.fps is None and self.nframes is None:
            raise ValueError("VideoConfig: set nframes or fps")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"VideoConfig: fps must be > 0, got {self.fps}")
        if self.fps is None and (isinstance(self.nframes, bool) or int(self.nframes) < 2):
            raise ValueError(f"VideoConfig: nframes must be an integer >= 2, got {self.nframes}")
        if self.min_pixels > self.max_pixels:
            raise ValueError("VideoConfig: min_pixels > max_pixels")
        if self.cache_size < 0 or self.cache_bytes < 0:
            raise ValueError("VideoConfig: cache_size and cache_bytes must be >= 0")
        if not self.min_segment_seconds > 0:
            raise ValueError(f"VideoConfig: min_segment_seconds must be > 0, got {self.min_segment_seconds}")
        self.segment_seconds = segment_range(self.segment_seconds)
        if self.segment_seconds[0] < self.min_segment_seconds:
            raise ValueError(
                f"VideoConfig: segment_seconds {list(self.segment_seconds)} is below min_segment_seconds "
                f"{self.min_segment_seconds}"
            )
        if self.video_root is not None:
            self.video_root = str(self.video_root)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["segment_seconds"] = list(self.segment_seconds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "VideoConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)
