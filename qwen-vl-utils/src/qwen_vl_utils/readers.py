"""Video readers: decord (default) and PyAV (fallback), both decoding only the requested frames.

The reader is chosen explicitly: the ``backend`` argument, else the environment variable
``QWEN_VL_UTILS_VIDEO_READER`` (``decord`` or ``pyav``), else decord, or PyAV when decord is not
installed. The choice is logged once. A read error is raised as VideoReadError naming the file;
it never silently retries with the other reader.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch

from .defaults import DEFAULTS

logger = logging.getLogger("qwen_vl_utils")

BACKENDS = ("decord", "pyav")
_ALIASES = {"decord": "decord", "pyav": "pyav", "av": "pyav"}
_MODULES = {"decord": "decord", "pyav": "av"}
_logged: set = set()

# PyAV: a target frame at most this many seconds after the last decoded one is reached by decoding
# forward; a farther one by seeking to the keyframe before it. Either way the work per requested
# frame is bounded (by this distance or one keyframe interval), never the whole video.
_PYAV_FORWARD_SECONDS = 1.0

PathLike = Union[str, "os.PathLike[str]"]


class VideoReadError(RuntimeError):
    """A video exists (or is a URL) but cannot be opened or decoded; the message names the file."""


@dataclass(frozen=True)
class VideoInfo:
    """What a reader knows about a video before decoding it."""

    path: str
    total_frames: int
    fps: float
    duration: float
    height: int
    width: int
    backend: str


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
    """Path as a string, ``file://`` stripped; a missing local file raises FileNotFoundError."""
    path = os.fspath(path)
    if path.startswith("file://"):
        path = path[len("file://"):]
    if "://" not in path and not os.path.isfile(path):
        raise FileNotFoundError(2, "video file not found", path)
    return path


class _DecordVideo:
    def __init__(self, path: str):
        import decord

        self.path = path
        try:
            self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=0)
            total, fps = len(self._vr), float(self._vr.get_avg_fps())
            height, width = self._vr[0].shape[:2] if total > 0 else (0, 0)
            self._vr.seek(0)
        except Exception as e:  # decord raises bare RuntimeError / DECORDError
            raise VideoReadError(f"cannot read video {path!r} with decord: {e}") from e
        self.info = VideoInfo(path, total, fps, total / fps if fps > 0 else 0.0, height, width, "decord")

    def read(self, indices: List[int]) -> np.ndarray:
        try:
            return self._vr.get_batch(indices).asnumpy()
        except Exception as e:
            raise VideoReadError(f"cannot decode frames of {self.path!r} with decord: {e}") from e

    def close(self) -> None:
        self._vr = None


class _PyAVVideo:
    def __init__(self, path: str):
        import av

        self.path = path
        try:
            self._container = av.open(path)
        except Exception as e:
            raise VideoReadError(f"cannot read video {path!r} with pyav: {e}") from e
        try:
            if not self._container.streams.video:
                raise VideoReadError(f"{path!r} has no video stream")
            stream = self._stream = self._container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            if not rate:
                raise VideoReadError(f"cannot read video {path!r} with pyav: unknown frame rate")
            fps = float(rate)
            self._time_base = float(stream.time_base)
            self._start_pts = stream.start_time or 0
            if stream.duration:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = (self._container.duration or 0) / 1_000_000
            total = stream.frames or int(round(duration * fps))
            ctx = stream.codec_context
            self.info = VideoInfo(path, int(total), fps, total / fps, ctx.height, ctx.width, "pyav")
        except Exception:
            self._container.close()
            raise

    def _index(self, frame) -> int:
        seconds = (frame.pts - self._start_pts) * self._time_base
        return int(round(seconds * self.info.fps))

    def read(self, indices: List[int]) -> np.ndarray:
        try:
            return self._read(indices)
        except VideoReadError:
            raise
        except Exception as e:
            raise VideoReadError(f"cannot decode frames of {self.path!r} with pyav: {e}") from e

    def _read(self, indices: List[int]) -> np.ndarray:
        fps, forward = self.info.fps, max(1, int(round(_PYAV_FORWARD_SECONDS * self.info.fps)))
        decoded: Dict[int, np.ndarray] = {}
        frames: Optional[Iterator] = None
        last, last_index = None, -1
        for target in sorted(set(indices)):
            if last is not None and last_index >= target:  # frame already decoded (gap in pts)
                decoded[target] = last.to_ndarray(format="rgb24")
                continue
            if frames is None or target - last_index > forward:
                pts = self._start_pts + int(round(target / fps / self._time_base))
                self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
                frames = self._container.decode(self._stream)
            for frame in frames:
                if frame.pts is None:
                    continue
                last, last_index = frame, self._index(frame)
                if last_index >= target:
                    break
            if last is None:
                raise VideoReadError(f"{self.path!r}: no frame could be decoded near frame {target}")
            if last_index < target:  # end of stream: the container overstated the frame count
                logger.warning("%r: frame %d is past the last decodable frame %d; using that frame",
                               self.path, target, last_index)
            decoded[target] = last.to_ndarray(format="rgb24")
        return np.stack([decoded[i] for i in indices])

    def close(self) -> None:
        self._container.close()


_READERS = {"decord": _DecordVideo, "pyav": _PyAVVideo}


class VideoFile:
    """An open video: ``.info`` (VideoInfo) and ``.read(indices)``. Use ``open_video`` to make one."""

    def __init__(self, path: PathLike, backend: Optional[str] = None):
        local = _local_path(path)
        self._impl = _READERS[resolve_backend(backend)](local)
        self.info: VideoInfo = self._impl.info
        if self.info.total_frames <= 0:
            self.close()
            raise VideoReadError(f"video {local!r} has no frames")

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        """uint8 ``[T, 3, H, W]`` of the frames at ``indices`` (any order, repeats allowed), decoding
        only those frames (plus, for PyAV, the frames between a keyframe and each target)."""
        idx = [int(i) for i in indices]
        if not idx:
            raise ValueError(f"no frame indices requested from {self.info.path!r}")
        bad = [i for i in idx if not 0 <= i < self.info.total_frames]
        if bad:
            raise IndexError(f"frame indices {bad[:5]} out of range [0, {self.info.total_frames}) for {self.info.path!r}")
        frames = self._impl.read(idx)
        return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)

    def close(self) -> None:
        self._impl.close()


@contextmanager
def open_video(path: PathLike, backend: Optional[str] = None) -> Iterator[VideoFile]:
    """Context manager yielding a VideoFile (one open for both the info and the frames)."""
    video = VideoFile(path, backend)
    try:
        yield video
    finally:
        video.close()


def get_video_info(path: PathLike, backend: Optional[str] = None) -> VideoInfo:
    """Frame count, fps, duration and size of a video. FileNotFoundError when a local file is
    missing; VideoReadError (naming the file) when it cannot be read."""
    with open_video(path, backend) as video:
        return video.info


def read_video_frames(path: PathLike, indices: Sequence[int], backend: Optional[str] = None) -> torch.Tensor:
    """uint8 ``[T, 3, H, W]`` frames at source indices ``indices``, decoding only those frames."""
    with open_video(path, backend) as video:
        return video.read(indices)

