"""A data row's video paths and sampling options: what the loader and the validator both read.

Kept apart from the validation (`schema.py`) because the loader needs them on every step while the
validator runs once, before training.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

from versavid_r1.data.config import CLIP_BOUND_KEYS, VideoConfig, segment_range

PathLike = Union[str, os.PathLike]
# Added by load_rows: absolute paths of the row's video(s), always a list (Arrow-friendly).
VIDEO_PATHS_KEY = "video_paths"
# Added by load_rows: "path/to/data.jsonl:LINE", so that a row failing later is named by its line.
ROW_SOURCE_KEY = "source_line"


# ------------------------------------------------------------------ paths ------------------------
def row_video_list(row: dict) -> list[str]:
    """The row's `video` as a list of path strings (one, or two for a MixVidQA pair)."""
    video = row.get("video")
    return [str(v) for v in video] if isinstance(video, (list, tuple)) else [str(video)]


def resolve_video_paths(row: dict, video_root: Optional[PathLike] = None) -> list[str]:
    """Absolute paths of the row's video(s): `video_paths` if `load_rows` added it, else `video`
    resolved against `video_root` (default: the current directory)."""
    given = row.get(VIDEO_PATHS_KEY)
    if given:
        return [str(p) for p in given]
    root = Path(video_root) if video_root is not None else Path.cwd()
    out = []
    for v in row_video_list(row):
        p = Path(os.path.expanduser(v))
        out.append(str(p if p.is_absolute() else _resolved(root / p)))
    return out


def _resolved(path: Path) -> str:
    """`path` with symlinks resolved; a symlink loop (which `resolve` raises on) stays as written, made
    absolute, so that opening it reports the loop as the row's error."""
    try:
        return str(path.resolve())
    except (RuntimeError, OSError):
        return os.path.abspath(path)


def normalize_row(row: dict, video_root: Optional[PathLike] = None) -> dict:
    """A copy of a valid row with `video_paths` (absolute, a list), `segment_seconds` as `[min, max]`,
    `mask_span` and the clip bounds as floats. `video` and every other key are kept as written."""
    out = dict(row)
    out[VIDEO_PATHS_KEY] = resolve_video_paths({"video": row.get("video")}, video_root)
    if out.get("segment_seconds") is not None:
        out["segment_seconds"] = list(segment_range(out["segment_seconds"]))
    if out.get("mask_span") is not None:
        out["mask_span"] = [float(v) for v in out["mask_span"]]
    for key in CLIP_BOUND_KEYS:
        if out.get(key) is not None:
            out[key] = float(out[key])
    return out


# ------------------------------------------------------------------ sampling options -------------
def present(row: dict, key: str) -> bool:
    """True when the row sets `key` (null counts as absent)."""
    return row.get(key) is not None


def sampling_options(row: dict, cfg: VideoConfig) -> dict:
    """The qwen-vl-utils video element (`nframes` or `fps` + frame limits, pixel limits, clip bounds)
    for a row: the config's values with the row's overrides applied."""
    ele: dict[str, Any] = {}
    if present(row, "nframes"):
        ele["nframes"] = int(row["nframes"])
    elif present(row, "fps"):
        ele["fps"] = float(row["fps"])
    elif cfg.fps is not None:
        ele["fps"] = float(cfg.fps)
    else:
        ele["nframes"] = int(cfg.nframes)
    if "fps" in ele:
        ele["min_frames"] = int(row["min_frames"]) if present(row, "min_frames") else cfg.min_frames
        ele["max_frames"] = int(row["max_frames"]) if present(row, "max_frames") else cfg.max_frames
    for key in ("min_pixels", "max_pixels", "total_pixels"):
        value = row[key] if present(row, key) else getattr(cfg, key)
        if value is not None:
            ele[key] = int(value)
    for key in ("resized_height", "resized_width"):
        if present(row, key):
            ele[key] = int(row[key])
    for key in CLIP_BOUND_KEYS:
        if present(row, key):
            ele[key] = float(row[key])
    return ele


def pixel_options(ele: dict) -> dict:
    return {
        k: ele[k]
        for k in ("min_pixels", "max_pixels", "total_pixels", "resized_height", "resized_width")
        if k in ele
    }
