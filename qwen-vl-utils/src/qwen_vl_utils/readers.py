"""Video readers: decord (default) and PyAV (fallback), both decoding only the requested frames.

The reader is chosen explicitly: the ``backend`` argument, else the environment variable
``QWEN_VL_UTILS_VIDEO_READER`` (``decord`` or ``pyav``), else decord, or PyAV when decord is not
installed. The choice is logged once. A read error is raised as VideoReadError naming the file;
it never silently retries with the other reader. The one planned exception: decord cannot read
videos whose container rotates them by 90 or 270 degrees, so those are read with PyAV (logged once
per file). Frames come as displayed (rotation applied) and, given a ``size``, are shrunk one at a
time right after decoding (`VideoFile.read`), so memory is bounded by the output, not the source.
The two implementations are in `backends.py`.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .backends import DecordVideo as _DecordVideo, PyAVVideo as _PyAVVideo, probe_rotation
from .defaults import DEFAULTS
from .resize import resize_frames
from .videoinfo import VideoInfo, VideoReadError

logger = logging.getLogger("qwen_vl_utils")

BACKENDS = ("decord", "pyav")
_ALIASES = {"decord": "decord", "pyav": "pyav", "av": "pyav"}
_MODULES = {"decord": "decord", "pyav": "av"}
_logged: set = set()

PathLike = Union[str, "os.PathLike[str]"]

# Frames resized together hold at most about this many bytes as float at the source size (at least one
# frame): batches keep the resize fast for small sources, and 1080p / 4K sources are shrunk one or two
# frames at a time.
_RESIZE_BATCH_BYTES = 32 * 1024 * 1024

__all__ = ["BACKENDS", "VideoFile", "VideoInfo", "VideoReadError", "get_video_info", "open_video",
           "read_video_frames", "resolve_backend"]


def resolve_backend(backend: Optional[str] = None) -> str:
    """Name of the reader to use: ``backend``, else ``$QWEN_VL_UTILS_VIDEO_READER``, else decord
    (PyAV when decord is not installed). Raises ValueError for an unknown name and ImportError when
    an explicitly chosen reader is not installed."""
    env = DEFAULTS.reader_env_var
    if backend:
        requested, source = backend, "set by the backend argument"
    elif os.environ.get(env):
        requested, source = os.environ[env], f"set by ${env}"
    else:
        requested, source = DEFAULTS.video_reader, "the default"
        if importlib.util.find_spec(_MODULES[requested]) is None:
            fallback = DEFAULTS.fallback_video_reader
            _log_once(fallback, f"{requested} is not installed; set ${env} to choose", logging.WARNING)
            return fallback
    name = _ALIASES.get(str(requested).strip().lower())
    if name is None:
        raise ValueError(f"unknown video reader {requested!r} ({source}); choose one of {BACKENDS}")
    if importlib.util.find_spec(_MODULES[name]) is None:
        raise ImportError(f"video reader {name!r} ({source}) is not installed: pip install {_MODULES[name]}")
    _log_once(name, source, logging.INFO)
    return name


def _log_once(name: str, why: str, level: int) -> None:
    key = (name, why)
    if key not in _logged:
        _logged.add(key)
        logger.log(level, "qwen_vl_utils reads videos with %s (%s)", name, why)


def _local_path(path: PathLike) -> str:
    """Path as a string, ``file://`` stripped; a missing local file (or a folder) raises FileNotFoundError.
    Anything else that exists is opened as is: a FIFO or a file on a hung mount may then block, which the
    caller bounds if it needs to."""
    path = os.fspath(path)
    if path.startswith("file://"):
        path = path[len("file://"):]
    if "://" not in path and (not os.path.exists(path) or os.path.isdir(path)):
        raise FileNotFoundError(2, "video file not found", path)
    return path


def _open_impl(path: str, name: str, known: Optional[VideoInfo]):
    if name == "pyav":
        return _PyAVVideo(path, known=known)
    rotation = known.rotation if known is not None else probe_rotation(path)
    if rotation in (90, 270):  # decord's rotated frame does not fit its own buffer (backends.py)
        if (path, "rotated") not in _logged:
            _logged.add((path, "rotated"))
            logger.info("%s is rotated by %d degrees, which decord cannot read: reading it with pyav", path, rotation)
        return _PyAVVideo(path, known=known)
    return _DecordVideo(path, rotation=rotation, known=known)


class VideoFile:
    """An open video: ``.info`` (VideoInfo) and ``.read(indices)``. Use ``open_video`` to make one.

    ``info``: a VideoInfo of this file read before (e.g. cached by the caller); it spares the
    rotation probe and the scan of frame times. It must describe the file as it is now.
    """

    def __init__(self, path: PathLike, backend: Optional[str] = None, info: Optional[VideoInfo] = None):
        local = _local_path(path)
        self._impl = _open_impl(local, resolve_backend(backend), info)
        self.info: VideoInfo = self._impl.info
        if self.info.total_frames <= 0:
            self.close()
            raise VideoReadError(f"video {local!r} has no frames")

    def read(self, indices: Sequence[int], size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """uint8 ``[T, 3, H, W]`` of the frames at ``indices`` (any order, repeats allowed), as displayed,
        decoding only those frames (plus, for PyAV, the frames between a keyframe and each target).

        ``size`` = (h, w): frames are resized (``resize_frames``: bicubic, antialiased, rounded) as soon
        as they are decoded, a few at a time (at most ``_RESIZE_BATCH_BYTES`` of them as float, at least
        one), so the source resolution is never held for all frames at once. The result equals resizing
        all frames at once.
        """
        idx = [int(i) for i in indices]
        if not idx:
            raise ValueError(f"no frame indices requested from {self.info.path!r}")
        bad = [i for i in idx if not 0 <= i < self.info.total_frames]
        if bad:
            raise IndexError(f"frame indices {bad[:5]} out of range [0, {self.info.total_frames}) for {self.info.path!r}")
        unique = sorted(set(idx))
        slot = {i: k for k, i in enumerate(unique)}
        out: Optional[torch.Tensor] = None
        pending: list = []  # (slot, uint8 [3, H, W]) decoded, not yet resized

        def flush() -> None:
            nonlocal out
            frames = torch.stack([f for _, f in pending])
            if size is not None and tuple(frames.shape[-2:]) != tuple(size):
                frames = resize_frames(frames, size).to(torch.uint8)
            if out is None:
                out = torch.empty((len(unique), *frames.shape[1:]), dtype=torch.uint8)
            out[[k for k, _ in pending]] = frames
            pending.clear()

        for i, frame in self._impl.iter_frames(unique):
            pending.append((slot[i], torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)))
            if size is None or len(pending) * frame.size * 4 >= _RESIZE_BATCH_BYTES:
                flush()
        if pending:
            flush()
        if out is None:
            raise VideoReadError(f"no frame could be decoded from {self.info.path!r}")
        return out if idx == unique else out[[slot[i] for i in idx]]

    def close(self) -> None:
        self._impl.close()


@contextmanager
def open_video(path: PathLike, backend: Optional[str] = None, info: Optional[VideoInfo] = None) -> Iterator[VideoFile]:
    """Context manager yielding a VideoFile (one open for both the info and the frames)."""
    video = VideoFile(path, backend, info)
    try:
        yield video
    finally:
        video.close()


def get_video_info(path: PathLike, backend: Optional[str] = None) -> VideoInfo:
    """Frame count, fps, duration, displayed size, frame times (VFR) and rotation of a video.
    FileNotFoundError when a local file is missing; VideoReadError (naming the file) when it
    cannot be read."""
    with open_video(path, backend) as video:
        return video.info


def read_video_frames(
    path: PathLike,
    indices: Sequence[int],
    backend: Optional[str] = None,
    size: Optional[Tuple[int, int]] = None,
    info: Optional[VideoInfo] = None,
) -> torch.Tensor:
    """uint8 ``[T, 3, H, W]`` frames at source indices ``indices``, decoding only those frames;
    with ``size``, each shrunk to it right after decoding (see `VideoFile.read`)."""
    with open_video(path, backend, info) as video:
        return video.read(indices, size=size)
