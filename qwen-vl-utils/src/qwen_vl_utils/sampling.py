"""Which frames of a video are sampled: count (smart_nframes), time range, indices, timestamps."""
from __future__ import annotations

import bisect
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from .defaults import DEFAULTS, get_option
from .resize import ceil_by_factor, floor_by_factor, round_by_factor

# Tolerance when turning seconds into frame indices: 0.3 s * 10 fps is 3.0000000000000004 in floating
# point, which must mean frame 3, not 4.
_INDEX_EPS = 1e-6


def smart_nframes(ele: Dict[str, Any], total_frames: int, video_fps: Union[int, float]) -> int:
    """Number of frames to sample from ``total_frames`` frames at ``video_fps``.

    ``ele["nframes"]``: that count rounded to the nearest multiple of ``DEFAULTS.frame_factor``.
    Otherwise ``ele["fps"]`` (default ``DEFAULTS.fps``) frames per second of video, clipped to
    [``min_frames``, ``max_frames``] (rounded up / down to the frame factor; ``max_frames`` defaults
    to ``min(DEFAULTS.max_frames, total_frames)``) and to ``total_frames``, then rounded down to the
    frame factor. Raises ValueError when both ``nframes`` and ``fps`` are given, or when the result is
    not within [frame_factor, total_frames].
    """
    factor = DEFAULTS.frame_factor
    nframes = get_option(ele, "nframes", None)
    fps = get_option(ele, "fps", None)
    if nframes is not None and fps is not None:
        raise ValueError(f"give either `fps` or `nframes` for a video, not both (got fps={fps}, nframes={nframes})")
    if nframes is not None:
        count = round_by_factor(nframes, factor)
    else:
        if fps is None:
            fps = DEFAULTS.fps
        if video_fps == 0:
            raise ValueError("smart_nframes: video_fps is 0; cannot sample by fps")
        min_frames = ceil_by_factor(get_option(ele, "min_frames", DEFAULTS.min_frames), factor)
        max_frames = floor_by_factor(get_option(ele, "max_frames", min(DEFAULTS.max_frames, total_frames)), factor)
        wanted = total_frames / video_fps * fps
        count = floor_by_factor(min(min(max(wanted, min_frames), max_frames), total_frames), factor)
    if not factor <= count <= total_frames:
        raise ValueError(
            f"smart_nframes: the number of frames must be in [{factor}, {total_frames}] "
            f"(frames available), got {count} from {_limits_repr(ele)}"
        )
    return count


def _limits_repr(ele: Dict[str, Any]) -> str:
    keys = ("nframes", "fps", "min_frames", "max_frames", "video_start", "video_end")
    given = {k: ele[k] for k in keys if ele.get(k) is not None}
    return f"{given}" if given else "the defaults"


def frame_range(
    ele: Dict[str, Any], total_frames: int, video_fps: float, frame_times: Optional[Sequence[float]] = None
) -> Tuple[int, int]:
    """(first, last) frame index, inclusive, of the time range ``ele["video_start"]`` ..
    ``ele["video_end"]`` in seconds (both optional, clamped to the video).

    first = ceil(video_start * fps), last = min(floor(video_end * fps), total_frames - 1), with a 1e-6
    tolerance so that float error never moves a boundary by a frame. For variable-frame-rate video
    (``frame_times``, see VideoInfo) the same rule on the frames' real times: the first frame shown at
    or after video_start, the last shown at or before video_end. Raises ValueError when the range
    holds fewer than two frames or the fps / frame count are not positive.
    """
    if video_fps <= 0:
        raise ValueError(f"video fps must be positive, got {video_fps}")
    if total_frames <= 0:
        raise ValueError(f"video has no frames (total_frames={total_frames})")
    start_s = get_option(ele, "video_start", None)
    end_s = get_option(ele, "video_end", None)
    duration = total_frames / video_fps
    first, last = 0, total_frames - 1
    if start_s is not None:
        first = first_frame_from(min(max(float(start_s), 0.0), duration), video_fps, total_frames, frame_times)
    if end_s is not None:
        last = frame_shown_at(min(max(float(end_s), 0.0), duration), video_fps, total_frames, frame_times)
    if first >= last:
        raise ValueError(
            f"video time range [{start_s}, {end_s}] s selects frames {first}..{last}: fewer than 2 frames "
            f"of a {duration:.3f} s video ({total_frames} frames at {video_fps:g} fps)"
        )
    return first, last


def first_frame_from(seconds: float, fps: float, total_frames: int, frame_times: Optional[Sequence[float]] = None) -> int:
    """Index of the first frame shown at or after ``seconds`` (``total_frames`` when there is none):
    ``ceil(seconds * fps)``, or by the real frame times of a variable-frame-rate video."""
    if frame_times is None:
        return min(math.ceil(seconds * fps - _INDEX_EPS), total_frames)
    return bisect.bisect_left(frame_times, seconds - _INDEX_EPS / max(fps, 1.0))


def frame_shown_at(seconds: float, fps: float, total_frames: int, frame_times: Optional[Sequence[float]] = None) -> int:
    """Index of the frame on screen at ``seconds`` (the last one that starts at or before it), within
    ``[0, total_frames - 1]``: ``floor(seconds * fps)``, or by the real frame times (VFR)."""
    if frame_times is None:
        index = math.floor(seconds * fps + _INDEX_EPS)
    else:
        index = bisect.bisect_right(frame_times, seconds + _INDEX_EPS / max(fps, 1.0)) - 1
    return max(0, min(int(index), total_frames - 1))


def sample_indices(first: int, last: int, nframes: int) -> List[int]:
    """``nframes`` source frame indices spread uniformly over [first, last] (both included):
    ``torch.linspace(first, last, nframes).round()``, the same indices as upstream."""
    return torch.linspace(first, last, nframes).round().long().tolist()


def frame_timestamps(indices: Sequence[int], fps: float, frame_times: Optional[Sequence[float]] = None) -> List[float]:
    """Timestamp in seconds of each source frame index: ``index / fps``, or the frame's real
    presentation time for variable-frame-rate video (``frame_times``, see VideoInfo)."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if frame_times is not None:
        return [float(frame_times[int(i)]) for i in indices]
    return [int(i) / float(fps) for i in indices]


def sample_fps(nframes: int, total_frames: int, video_fps: float) -> float:
    """Frames per second of the sampled clip: ``nframes / total_frames * video_fps`` (the ``fps``
    that process_vision_info returns in video_kwargs)."""
    return nframes / max(total_frames, 1e-6) * video_fps


def range_sample_fps(
    nframes: int, first: int, last: int, video_fps: float, frame_times: Optional[Sequence[float]] = None
) -> float:
    """Frames per second of ``nframes`` sampled from frames ``first..last``: ``sample_fps`` over the
    range's frame count, or over its real length for variable-frame-rate video (the last frame of
    the video lasts one average frame interval)."""
    if frame_times is None:
        return sample_fps(nframes, last - first + 1, video_fps)
    end = frame_times[last + 1] if last + 1 < len(frame_times) else frame_times[last] + 1.0 / video_fps
    return nframes / max(end - frame_times[first], 1e-6)
