"""Loading a row's video as the policy sees it: sampled, resized, with the proxy tasks applied.

`load_video(row, cfg)` returns a `VideoClip` (uint8 frames `[T, 3, H, W]`, source timestamps, clip
index of each frame, sampling fps). Decoding goes through qwen_vl_utils and only the sampled frames
are decoded:

- plain rows (MCQA, caption, DarkEventInfer without `mask_span`, pre-rendered MixVidQA): the indices
  qwen-vl-utils' `fetch_video` picks (`sample_video_frames`: the row's `video_start`/`video_end`
  clip, then `smart_nframes`, then uniform spacing over the clip's frames), resized to the size
  `fetch_video` would choose (`video_target_size`, bicubic with antialiasing, then rounded back to
  uint8), with its sampling fps (`sample_fps` over the clip's frames);
- DarkEventInfer with `mask_span`: the same, with at least one sampled frame inside the span and every
  frame inside it set to zero (versavid_r1.data.proxy);
- MixVidQA with two clips: the virtual a/b timeline (versavid_r1.data.proxy); both clips are resized
  to the size computed for clip a.

Clips are cached per process (LRU of at most `cfg.cache_size` clips and `cfg.cache_bytes` bytes of
frames), keyed on the resolved paths (with their size and mtime), the row's video-relevant fields and
the config, so that validation (which decodes every row through `load_video`) and the generation and
loss passes of a step decode each video once. A cached clip is shared: treat its tensors as read-only.

Memory: each sampled frame is shrunk to its target size right after it is decoded
(`qwen_vl_utils.read_video_frames(..., size=)`), so a 1080p or 4K source never has all its sampled
frames held at the source resolution. Frame times are the frames' real presentation times for
variable-frame-rate video (`VideoInfo.frame_times`), and frames come as displayed (rotation applied).
"""
from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional, Sequence, Union

import torch
import qwen_vl_utils as qvu

from versavid_r1.data.config import CLIP_BOUND_KEYS, ROW_VIDEO_OVERRIDES, VideoConfig, segment_range
from versavid_r1.data.limits import override_bound_errors
from versavid_r1.data.proxy import (
    draw_segment_seconds,
    ensure_index_in_range,
    locate,
    mix_timeline,
    sample_times,
    shown_indices,
    source_frame,
    span_frame_range,
)
from versavid_r1.data.read_deadline import read_with_deadline
from versavid_r1.data.rows import pixel_options, resolve_video_paths, sampling_options
from versavid_r1.tasks import DARK_EVENT_INFER, MIX_VID_QA


@dataclass
class VideoClip:
    """A sampled video. `frames` uint8 `[T, 3, H, W]`; `timestamps[k]` source seconds of frame k;
    `sources[k]` its clip (0, or 0/1 for MixVidQA pairs); `fps` the sampling rate (T / duration, the
    duration of the sampled time range: the clip bounds' when the row has them)."""

    frames: torch.Tensor
    timestamps: list[float]
    sources: list[int]
    fps: float
    indices: list[int] = field(default_factory=list)  # source frame index of each frame
    masked: list[bool] = field(default_factory=list)  # DarkEventInfer: frame blacked out
    paths: list[str] = field(default_factory=list)
    segment_seconds: Optional[float] = None  # MixVidQA: the segment length used
    # The video as the model is shown it: its frame rate (the source's; MixVidQA: clip a's) and each frame's
    # index in it (the source index; MixVidQA: the frame of the interleaved video on screen at the sampled moment).
    # Qwen3-VL / Qwen3.5 print index / fps as the frame's time (`timeline_metadata`).
    timeline_fps: Optional[float] = None
    timeline_indices: list[int] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        """Seconds the clip stands for (source duration or the bounded clip's, or the virtual timeline's
        for MixVidQA)."""
        return self.num_frames / self.fps


# ------------------------------------------------------------------ processor kwargs -------------
def frames_metadata(frames: torch.Tensor, fps: float) -> dict:
    """transformers `VideoMetadata` fields describing `frames` (uint8 [T, 3, H, W]) as a whole video at `fps`.

    transformers 5.x computes Qwen2.5-VL's `second_per_grid_ts` (temporal position ids) from
    `metadata.sampled_fps = len(frames_indices) / total_num_frames * fps`; describing already-sampled
    frames as a `T`-frame video at `fps` makes that exactly `fps`, so second_per_grid_ts =
    temporal_patch_size / fps. Without metadata it assumes 24 fps. vLLM's Qwen2.5-VL processor takes the
    same dict next to the frames (`versavid_r1.trainer.vllm_video`).
    """
    t, _, h, w = frames.shape
    return {
        "total_num_frames": int(t),
        "fps": float(fps),
        "frames_indices": list(range(int(t))),
        "height": int(h),
        "width": int(w),
        "duration": float(t / fps),
    }


def timeline_metadata(clip: Any, frames: Optional[torch.Tensor] = None) -> dict:
    """transformers `VideoMetadata` fields that place each frame of `clip` at its real time: `frames_indices` are
    the frames' indices in the video as shown, at its frame rate `fps` (the clip's `timeline_*` fields). Qwen3-VL's
    processor (and vLLM's) prints `index / fps`, averaged over each 2-frame group, as the group's timestamp, exactly
    as when it samples a video file itself. A clip without a timeline (a custom loader's: only `frames` and `fps`)
    counts from 0 at its sampling rate (`frames_metadata`). `frames`: the frames the processor gets, when resized."""
    frames = clip.frames if frames is None else frames
    indices = list(getattr(clip, "timeline_indices", None) or [])
    fps = getattr(clip, "timeline_fps", None)
    t, _, h, w = frames.shape
    if not indices or not fps:
        return frames_metadata(frames, float(clip.fps))
    if len(indices) != int(t):
        raise ValueError(f"clip has {int(t)} frames but {len(indices)} timeline indices")
    total = max(indices) + 1
    return {"total_num_frames": int(total), "fps": float(fps), "frames_indices": [int(i) for i in indices],
            "height": int(h), "width": int(w), "duration": float(total / fps)}


def video_metadata(clip: VideoClip) -> dict:
    """transformers `VideoMetadata` fields for an already-sampled clip at its sampling fps (`frames_metadata`)."""
    return frames_metadata(clip.frames, clip.fps)


def video_processor_kwargs(clips: Union[VideoClip, Sequence[VideoClip]]) -> dict:
    """Keyword arguments for a Qwen2/2.5-VL processor call with `videos=[clip.frames, ...]`:

    - `do_sample_frames=False`: the clip is already sampled;
    - `video_metadata`: one entry per video carrying its sampling fps (so `second_per_grid_ts` is
      `temporal_patch_size / clip.fps`, not the 24 fps transformers assumes without metadata);
    - `size`: pixel bounds that contain every clip's frame area, so the processor's own resize keeps
      the frames as `load_video` sized them (they are already multiples of the patch factor). Without
      it the processor re-fits frames into its configured min/max pixels.
    """
    clips = [clips] if isinstance(clips, VideoClip) else list(clips)
    areas = [int(c.frames.shape[-2]) * int(c.frames.shape[-1]) for c in clips]
    return {
        "do_sample_frames": False,
        "video_metadata": [video_metadata(c) for c in clips],
        "size": {"shortest_edge": min(areas), "longest_edge": max(areas)},
    }


# ------------------------------------------------------------------ caches -----------------------
class CacheInfo(NamedTuple):
    hits: int
    misses: int
    size: int
    maxsize: int
    nbytes: int = 0  # bytes of the cached clips' frames


class _ClipCache:
    """LRU of decoded clips, bounded by count and by the bytes of their frames."""

    def __init__(self) -> None:
        self._items: "OrderedDict[str, VideoClip]" = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.maxsize = 0
        self.nbytes = 0

    def get(self, key: str) -> Optional[VideoClip]:
        with self._lock:
            clip = self._items.get(key)
            if clip is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return clip

    def put(self, key: str, clip: VideoClip, maxsize: int, max_bytes: Optional[int] = None) -> None:
        size = _clip_bytes(clip)
        with self._lock:
            self.maxsize = maxsize
            if maxsize <= 0:
                self._items.clear()
                self.nbytes = 0
                return
            if max_bytes is not None and size > max_bytes:
                return  # larger than the whole budget: not kept
            if key in self._items:
                self.nbytes -= _clip_bytes(self._items.pop(key))
            self._items[key] = clip
            self.nbytes += size
            while len(self._items) > maxsize or (max_bytes is not None and self.nbytes > max_bytes):
                self.nbytes -= _clip_bytes(self._items.popitem(last=False)[1])

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = self.nbytes = 0

    def info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self.hits, self.misses, len(self._items), self.maxsize, self.nbytes)


def _clip_bytes(clip: VideoClip) -> int:
    return int(clip.frames.numel()) * int(clip.frames.element_size())


_CLIPS = _ClipCache()
_INFOS: "OrderedDict[tuple, Any]" = OrderedDict()
_INFOS_LOCK = threading.Lock()
_INFOS_MAX = 4096


def video_cache_info() -> CacheInfo:
    """Hits, misses and size of this process's decoded-clip cache."""
    return _CLIPS.info()


def clear_video_cache() -> None:
    _CLIPS.clear()
    with _INFOS_LOCK:
        _INFOS.clear()


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)  # FileNotFoundError names the file
    return st.st_size, st.st_mtime_ns


def video_info(path: str, backend: Optional[str] = None, timeout_s: Optional[float] = None):
    """`qwen_vl_utils.get_video_info`, cached per (path, size, mtime, backend); within `timeout_s` seconds
    (default `VideoConfig`'s read deadline), else `read_deadline.VideoReadTimeout`."""
    timeout = timeout_s if timeout_s is not None else VideoConfig.read_timeout_s
    return read_with_deadline(lambda: _video_info(path, backend), timeout, path)


def _video_info(path: str, backend: Optional[str]):
    key = (path, *_stat(path), backend)
    with _INFOS_LOCK:
        if key in _INFOS:
            _INFOS.move_to_end(key)
            return _INFOS[key]
    info = qvu.get_video_info(path, backend=backend)
    with _INFOS_LOCK:
        _INFOS[key] = info
        while len(_INFOS) > _INFOS_MAX:
            _INFOS.popitem(last=False)
    return info


def _cache_key(row: dict, cfg: VideoConfig, paths: list[str]) -> str:
    relevant = {k: row.get(k) for k in ("video", "problem_type", "mask_span", *ROW_VIDEO_OVERRIDES)}
    if row.get("segment_seconds") is not None:
        relevant["segment_seconds"] = list(segment_range(row["segment_seconds"]))
    cfg_d = cfg.to_dict()
    for name in ("cache_size", "cache_bytes", "time_encoding", "read_timeout_s"):  # time_encoding: the
        cfg_d.pop(name)                                      # processor's time description, not the frames
    files = [(p, *_stat(p)) for p in paths]
    return json.dumps({"row": relevant, "files": files, "cfg": cfg_d}, sort_keys=True, default=str)


# ------------------------------------------------------------------ loading ----------------------
def _target_size(height: int, width: int, nframes: int, ele: dict, cfg: VideoConfig) -> tuple[int, int]:
    h, w = qvu.video_target_size(height, width, nframes, pixel_options(ele), image_patch_size=cfg.image_patch_size)
    return int(h), int(w)


def load_video(row: dict, cfg: Optional[VideoConfig] = None) -> VideoClip:
    """The row's video as the policy sees it (see the module docstring). Same row and config, same
    frames. Raises FileNotFoundError / qwen_vl_utils.VideoReadError / ValueError for bad input, each
    naming the video file(s); `read_deadline.VideoReadTimeout` when the read (cache lookup included: it
    stats the files) takes longer than `cfg.read_timeout_s`."""
    cfg = cfg or VideoConfig()
    paths = resolve_video_paths(row, cfg.video_root)
    return read_with_deadline(lambda: _load_video(row, cfg, paths), cfg.read_timeout_s, " + ".join(paths))


def _load_video(row: dict, cfg: VideoConfig, paths: list[str]) -> VideoClip:
    key = _cache_key(row, cfg, paths) if cfg.cache_size > 0 else None
    if key is not None:
        clip = _CLIPS.get(key)
        if clip is not None:
            return clip
    try:
        clip = _load_uncached(row, cfg, paths)
    except (ValueError, IndexError) as exc:  # sampling / sizing problems do not know the file: name it
        if any(p in str(exc) for p in paths):
            raise
        raise ValueError(f"{' + '.join(paths)}: {exc}") from exc
    if key is not None:
        _CLIPS.put(key, clip, cfg.cache_size, cfg.cache_bytes)
    return clip


def _load_uncached(row: dict, cfg: VideoConfig, paths: list[str]) -> VideoClip:
    problems = override_bound_errors(row, cfg)
    if problems:
        raise ValueError("; ".join(f"{k}: {msg}" for k, msg in problems))
    ele = sampling_options(row, cfg)
    ptype = row.get("problem_type")
    if len(paths) == 2 and ptype == MIX_VID_QA:
        return _load_mix(row, cfg, paths, ele)
    if len(paths) != 1:
        raise ValueError(f"row has {len(paths)} videos; only MixVidQA rows take a pair of clips")
    path = paths[0]
    info = video_info(path, cfg.backend)
    total, fps, times = int(info.total_frames), float(info.fps), info.frame_times
    indices = qvu.sample_video_frames(dict(ele), total, fps, times)  # clip bounds, smart_nframes, uniform spacing
    first, last = qvu.frame_range(ele, total, fps, times)
    nframes = len(indices)

    span_range = None
    span = row.get("mask_span")
    if ptype == DARK_EVENT_INFER and span is not None:
        span_range = span_frame_range(span, fps, total, times)
        if span_range is None:
            raise ValueError(f"mask_span {span} contains no frame of {path} ({total} frames at {fps:g} fps)")
        if not first <= span_range[0] <= span_range[1] <= last:
            raise ValueError(f"mask_span {span} is not inside the clip bounds of {path} (frames {first}..{last})")
        indices = ensure_index_in_range(indices, span_range)

    size = _target_size(info.height, info.width, nframes, ele, cfg)
    frames = qvu.read_video_frames(path, indices, backend=cfg.backend, size=size, info=info)
    masked = [False] * nframes
    if span_range is not None:
        masked = [span_range[0] <= i <= span_range[1] for i in indices]
        if any(masked):
            frames[torch.tensor(masked)] = 0
    return VideoClip(
        frames=frames.contiguous(),
        timestamps=[float(t) for t in qvu.frame_timestamps(indices, fps, times)],
        sources=[0] * nframes,
        fps=qvu.range_sample_fps(nframes, first, last, fps, times),
        indices=list(indices),
        masked=masked,
        paths=[path],
        timeline_fps=fps,
        timeline_indices=list(indices),
    )


def _load_mix(row: dict, cfg: VideoConfig, paths: list[str], ele: dict) -> VideoClip:
    if any(k in ele for k in CLIP_BOUND_KEYS):
        raise ValueError("clip bounds (video_start / video_end) apply to a single video, not a MixVidQA pair")
    infos = [video_info(p, cfg.backend) for p in paths]
    totals = [int(i.total_frames) for i in infos]
    fpss = [float(i.fps) for i in infos]
    durations = [t / f for t, f in zip(totals, fpss)]
    spec = row.get("segment_seconds")
    seg = draw_segment_seconds(row.get("video"), spec if spec is not None else cfg.segment_seconds, cfg.seed)
    if seg < cfg.min_segment_seconds:  # the timeline would hold duration / seg segments
        raise ValueError(f"segment_seconds {seg:g} is below min_segment_seconds {cfg.min_segment_seconds:g}")
    timeline = mix_timeline(durations, seg)
    virtual = sum(durations)
    total = sum(totals)
    nframes = int(qvu.smart_nframes(dict(ele), total_frames=total, video_fps=total / virtual))

    picks: list[tuple[int, int]] = []
    moments = sample_times(virtual, nframes)
    for t in moments:
        c, src = locate(timeline, t)
        picks.append((c, source_frame(src, fpss[c], totals[c], infos[c].frame_times)))

    # Both clips at clip a's target size; each clip's needed frames decoded once (sorted, unique), each
    # frame shrunk right after decoding.
    size = _target_size(int(infos[0].height), int(infos[0].width), nframes, ele, cfg)
    decoded: dict[int, dict[int, torch.Tensor]] = {}
    for c in (0, 1):
        wanted = sorted({i for cc, i in picks if cc == c})
        if wanted:
            frames = qvu.read_video_frames(paths[c], wanted, backend=cfg.backend, size=size, info=infos[c])
            decoded[c] = {i: frames[k] for k, i in enumerate(wanted)}
    out = torch.stack([decoded[c][i] for c, i in picks])
    return VideoClip(
        frames=out.contiguous(),
        timestamps=[qvu.frame_timestamps([i], fpss[c], infos[c].frame_times)[0] for c, i in picks],
        sources=[c for c, _ in picks],
        fps=nframes / virtual,
        indices=[i for _, i in picks],
        masked=[False] * nframes,
        paths=list(paths),
        segment_seconds=seg,
        timeline_fps=fpss[0],
        timeline_indices=shown_indices(moments, fpss[0]),
    )
