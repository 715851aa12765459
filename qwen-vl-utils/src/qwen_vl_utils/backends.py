"""The two frame readers behind `readers.VideoFile`: decord and PyAV.

Both index frames in presentation order and yield them one at a time (`iter_frames`), so the caller
can shrink each frame as soon as it is decoded instead of holding every sampled frame at the source
resolution. Both report each frame's real presentation time for variable-frame-rate video
(`VideoInfo.frame_times`) and give frames as displayed: the container's display rotation is applied.

- decord: frame times from `get_frame_timestamp`; it rotates 180° videos itself but cannot read 90°
  or 270° ones (its rotated frame has the unrotated buffer size, and `get_batch` fails), so
  `readers.VideoFile` reads those with PyAV and logs it. decord has no rotation API, so the rotation
  is read with PyAV (`probe_rotation`).
- PyAV: frame times from the packets' timestamps (demuxed once at open, no decoding; decord scans its
  packets at open the same way), the rotation from the first frame's display matrix (PyAV, like
  libavcodec, does not rotate), and each requested frame reached by seeking to the keyframe before
  it and decoding forward.
"""
from __future__ import annotations

import bisect
import logging
from typing import Iterator, List, Optional, Tuple

import numpy as np

from .videoinfo import VideoInfo, VideoReadError, normalize_rotation, variable_frame_times

logger = logging.getLogger("qwen_vl_utils")

# PyAV: a target frame at most this many seconds after the last decoded one is reached by decoding
# forward; a farther one by seeking to the keyframe before it. Either way the work per requested
# frame is bounded (by this distance or one keyframe interval), never the whole video.
_PYAV_FORWARD_SECONDS = 1.0
# decord: frames fetched per get_batch call are capped at about this many bytes (RGB at the source
# size), so a 4K video is never held whole in memory before the caller shrinks each frame.
_DECORD_BATCH_BYTES = 8 * 1024 * 1024
# Seconds of slack when matching a decoded frame's timestamp to the frame list.
_TIME_EPS = 1e-6

Frame = Tuple[int, np.ndarray]  # (source index, RGB uint8 [H, W, 3] as displayed)


def rotate_frame(frame: np.ndarray, rotation: int) -> np.ndarray:
    """An HWC frame as displayed: rotated `rotation` degrees counter-clockwise (FFmpeg's convention)."""
    return np.rot90(frame, k=rotation // 90) if rotation else frame


def probe_rotation(path: str) -> int:
    """The display rotation of a video's first frame (0/90/180/270 counter-clockwise), read with PyAV;
    0 when PyAV cannot read it (the chosen reader then reports its own error)."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                return 0
            for frame in container.decode(container.streams.video[0]):
                return normalize_rotation(frame.rotation)
    except Exception:  # noqa: BLE001 - any failure: the chosen reader names the file and its cause
        return 0
    return 0


class DecordVideo:
    name = "decord"

    def __init__(self, path: str, rotation: int = 0, known: Optional[VideoInfo] = None):
        import decord

        self.path = path
        try:
            self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=0)
            total, fps = len(self._vr), float(self._vr.get_avg_fps())
            height, width = self._vr[0].shape[:2] if total > 0 else (0, 0)
            self._vr.seek(0)
            if known is not None and known.backend == self.name:
                times = known.frame_times
            else:
                stamps = self._vr.get_frame_timestamp(list(range(total)))[:, 0] if total > 0 else []
                times = variable_frame_times(stamps, fps)
        except Exception as e:  # decord raises bare RuntimeError / DECORDError
            raise VideoReadError(f"cannot read video {path!r} with decord: {e}") from e
        duration = total / fps if fps > 0 else 0.0
        self.info = VideoInfo(path, total, fps, duration, height, width, self.name, times, rotation)

    def iter_frames(self, indices: List[int]) -> Iterator[Frame]:
        """(index, frame) for sorted unique `indices`, decoded a bounded batch at a time."""
        frame_bytes = max(1, self.info.height * self.info.width * 3)
        per_call = max(1, _DECORD_BATCH_BYTES // frame_bytes)
        for start in range(0, len(indices), per_call):
            chunk = indices[start:start + per_call]
            try:
                batch = self._vr.get_batch(chunk).asnumpy()
            except Exception as e:
                raise VideoReadError(f"cannot decode frames of {self.path!r} with decord: {e}") from e
            yield from zip(chunk, batch)

    def close(self) -> None:
        self._vr = None


class PyAVVideo:
    name = "pyav"

    def __init__(self, path: str, known: Optional[VideoInfo] = None):
        import av

        self.path = path
        try:
            self._container = av.open(path)
        except Exception as e:
            raise VideoReadError(f"cannot read video {path!r} with pyav: {e}") from e
        try:
            self._open(known)
        except VideoReadError:
            self._container.close()
            raise
        except Exception as e:
            self._container.close()
            raise VideoReadError(f"cannot read video {path!r} with pyav: {e}") from e

    def _open(self, known: Optional[VideoInfo]) -> None:
        if not self._container.streams.video:
            raise VideoReadError(f"{self.path!r} has no video stream")
        stream = self._stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise VideoReadError(f"cannot read video {self.path!r} with pyav: unknown frame rate")
        fps = float(rate)
        self._time_base = float(stream.time_base)
        if known is not None and known.backend == self.name:
            self.info, self._start_pts = known, stream.start_time or 0
            self._times = known.frame_times
            return
        first = next(iter(self._container.decode(stream)), None)
        if first is None:
            raise VideoReadError(f"{self.path!r}: no frame could be decoded")
        rotation = normalize_rotation(first.rotation)
        height, width = (first.width, first.height) if rotation in (90, 270) else (first.height, first.width)
        pts = self._packet_pts()
        if pts:
            self._start_pts, total = min(pts), len(pts)
            times = variable_frame_times([p * self._time_base for p in pts], fps)
        else:  # a container without packet timestamps: trust its header
            self._start_pts, times = stream.start_time or 0, None
            duration = float(stream.duration * stream.time_base) if stream.duration else (
                (self._container.duration or 0) / 1_000_000)
            total = stream.frames or int(round(duration * fps))
        self._times = times
        self.info = VideoInfo(self.path, int(total), fps, total / fps, height, width, self.name, times, rotation)

    def _packet_pts(self) -> Optional[List[int]]:
        """Every video packet's pts (one packet per frame), or None when a packet has none."""
        self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        pts: List[int] = []
        for packet in self._container.demux(self._stream):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            if packet.pts is None:
                return None
            pts.append(int(packet.pts))
        return pts

    def _index(self, frame) -> int:
        seconds = (frame.pts - self._start_pts) * self._time_base
        if self._times is None:
            return int(round(seconds * self.info.fps))
        return min(bisect.bisect_left(self._times, seconds - _TIME_EPS), self.info.total_frames - 1)

    def _seek_pts(self, target: int) -> int:
        seconds = target / self.info.fps if self._times is None else self._times[target]
        return self._start_pts + int(round(seconds / self._time_base))

    def _array(self, frame) -> np.ndarray:
        return rotate_frame(frame.to_ndarray(format="rgb24"), self.info.rotation)

    def iter_frames(self, indices: List[int]) -> Iterator[Frame]:
        try:
            yield from self._iter_frames(indices)
        except VideoReadError:
            raise
        except Exception as e:
            raise VideoReadError(f"cannot decode frames of {self.path!r} with pyav: {e}") from e

    def _iter_frames(self, indices: List[int]) -> Iterator[Frame]:
        forward = max(1, int(round(_PYAV_FORWARD_SECONDS * self.info.fps)))
        frames: Optional[Iterator] = None
        last, last_index = None, -1
        for target in indices:
            if last is not None and last_index >= target:  # frame already decoded (gap in pts)
                yield target, self._array(last)
                continue
            if frames is None or target - last_index > forward:
                self._container.seek(self._seek_pts(target), stream=self._stream, backward=True, any_frame=False)
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
            yield target, self._array(last)

    def close(self) -> None:
        self._container.close()
