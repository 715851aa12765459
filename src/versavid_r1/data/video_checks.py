"""The part of row validation that opens the row's videos (`schema.validate_row` does the rest).

From the headers (each video opened once per validation run, through the loader's process-wide info
cache): the file exists and reads, the `mask_span` and clip bounds fall on frames, the sampling
settings fit the frame count, and the frame can be sized (aspect ratio within what Qwen's
smart_resize accepts). Then, unless `decode=False`, the row is loaded exactly as training will load it
(`load_video`: the same frames, at the row's settings): a file whose sampled frames do not decode, or
whose clip is too large for the prompt, fails here with its line number instead of at the training
step that first samples it. The decoded clip lands in the loader's clip cache, so training does not
decode it again while it stays there.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import qwen_vl_utils as qvu

from versavid_r1.data.config import CLIP_BOUND_KEYS, VideoConfig
from versavid_r1.data.limits import RowLimits, video_token_errors
from versavid_r1.data.proxy import span_frame_range
from versavid_r1.data.rows import PathLike, normalize_row, pixel_options, present, resolve_video_paths, sampling_options
from versavid_r1.data.video import load_video, video_info
from versavid_r1.tasks import DARK_EVENT_INFER

Err = Callable[[str, str], None]


class InfoCache:
    """Video info once per path (per validation run), errors remembered too. Successful reads go through
    the loader's process-wide cache (`video.video_info`), so training does not open each video again
    for its info after validating it."""

    def __init__(self, backend: Optional[str], timeout_s: Optional[float] = None):
        self.backend = backend
        self.timeout_s = timeout_s  # the read deadline (None: VideoConfig's default)
        self._items: dict[str, Any] = {}

    def get(self, path: str):
        if path not in self._items:
            try:
                self._items[path] = video_info(path, backend=self.backend, timeout_s=self.timeout_s)
            except FileNotFoundError:
                self._items[path] = RuntimeError(f"video file not found: {path}")
            except Exception as exc:  # VideoReadError, a symlink loop (OSError), a backend's own exception
                self._items[path] = RuntimeError(f"unreadable video {path}: {type(exc).__name__}: {exc}")
        return self._items[path]


def _check_clip_bounds_in_video(row: dict, info: Any, err: Err) -> bool:
    """Clip bounds against the opened video: the start lies inside it and the clip holds >= 2 frames."""
    given = [k for k in CLIP_BOUND_KEYS if present(row, k)]
    if not given:
        return True
    duration = info.total_frames / info.fps
    start = row.get("video_start")
    if start is not None and start >= duration:
        err("video_start", f"{start} s is not inside the video ({duration:.3f} s)")
        return False
    try:
        qvu.frame_range({k: row[k] for k in given}, info.total_frames, info.fps, info.frame_times)
    except ValueError as exc:
        err(given[0], str(exc))
        return False
    return True


def check_row_videos(
    row: dict,
    video_root: Optional[PathLike],
    cfg: VideoConfig,
    infos: InfoCache,
    err: Err,
    *,
    span: Optional[Sequence[float]],
    overrides_ok: bool,
    limits: RowLimits,
    decode: bool,
) -> None:
    """Report (through `err`) every problem of the row's well-formed `video` against the files.
    `span`: the row's valid DarkEventInfer `mask_span` or None; `overrides_ok`: its overrides passed."""
    paths = resolve_video_paths({"video": row["video"]}, video_root)
    names = ["video"] if len(paths) == 1 else [f"video[{k}]" for k in range(len(paths))]
    info_list = []
    for name, path in zip(names, paths):
        info = infos.get(path)
        if isinstance(info, Exception):
            err(name, str(info))
        elif not (info.total_frames >= 1 and info.fps and info.fps > 0):
            err(name, f"video {path} reports {info.total_frames} frames at {info.fps} fps")
        else:
            info_list.append(info)
    if len(info_list) != len(paths):
        return
    ok = True
    if span is not None and row.get("problem_type") == DARK_EVENT_INFER:
        ok = _check_span(span, info_list[0], err)
    if overrides_ok and len(info_list) == 1:
        overrides_ok = _check_clip_bounds_in_video(row, info_list[0], err)
    if not overrides_ok:
        return
    ele = sampling_options(row, cfg)
    ok = _check_sampling(ele, info_list, err) and ok
    # The frame size: Qwen's smart_resize refuses an aspect ratio over DEFAULTS.max_aspect_ratio (200).
    for name, path, info in zip(names[:1], paths, info_list):  # clip b is sized like clip a
        try:
            qvu.video_target_size(info.height, info.width, 2, pixel_options(ele), image_patch_size=cfg.image_patch_size)
        except ValueError as exc:
            err(name, f"{path}: {exc}")
            ok = False
    if ok and decode:
        _check_decode(row, video_root, cfg, limits, names[0], err)


def _check_span(span: Sequence[float], info: Any, err: Err) -> bool:
    duration = info.total_frames / info.fps
    tol = 0.5 / info.fps
    if span[0] >= duration or span[1] > duration + tol:
        err("mask_span", f"span {list(span)} is outside the video's duration ({duration:.3f} s)")
        return False
    if span_frame_range(span, info.fps, info.total_frames, info.frame_times) is None:
        err("mask_span", f"span {list(span)} contains no frame of the video ({info.fps:g} fps)")
        return False
    return True


def _check_sampling(ele: dict, info_list: list, err: Err) -> bool:
    sampling = {k: v for k, v in ele.items() if k in ("nframes", "fps", "min_frames", "max_frames")}
    try:
        if len(info_list) == 2:
            total = sum(i.total_frames for i in info_list)
            duration = sum(i.total_frames / i.fps for i in info_list)
            qvu.smart_nframes(dict(ele), total_frames=total, video_fps=total / duration)
        else:  # within the clip bounds, as load_video samples
            i = info_list[0]
            qvu.sample_video_frames(dict(ele), total_frames=i.total_frames, video_fps=i.fps, frame_times=i.frame_times)
    except Exception as exc:
        err("nframes" if "nframes" in ele else "fps", f"cannot sample {sampling} from this video: {exc}")
        return False
    return True


def _check_decode(row: dict, video_root: Optional[PathLike], cfg: VideoConfig, limits: RowLimits, name: str,
                  err: Err) -> None:
    """Load the row as training will (normalised as load_rows stores it, so the cached clip is the one
    training asks for)."""
    try:
        clip = load_video(normalize_row(row, video_root), cfg)
    except Exception as exc:  # noqa: BLE001 - whatever training would hit is this row's error
        err(name, f"cannot be loaded as training would load it: {type(exc).__name__}: {exc}")
        return
    factor = qvu.DEFAULTS.patch_factor(cfg.image_patch_size)
    for fld, msg in video_token_errors([clip], limits.max_prompt_length, factor):
        err(fld, msg)
