"""Writing real H.264 mp4 files with PyAV (no system ffmpeg needed).

Used by the demo-data generator, the tests and the benchmarks, which all make the videos they need
instead of shipping binaries.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable, Union

import av
import numpy as np


def write_mp4(
    path: Union[str, Path],
    frames: Union[np.ndarray, Iterable[np.ndarray]],
    fps: float,
    crf: int = 18,
) -> Path:
    """Encode RGB uint8 frames (`[T, H, W, 3]` array or an iterable of `[H, W, 3]`) as H.264 mp4.

    Height and width must be even (yuv420p). `crf` 18 keeps solid colours within a few levels of
    their value, which the tests rely on when they compare decoded pixels.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast"}
        first = True
        for frame in frames:
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            if first:
                stream.height, stream.width = frame.shape[:2]
                first = False
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        if first:
            raise ValueError(f"write_mp4({path}): no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    return path


def solid_color_frames(color: tuple[int, int, int], n: int, height: int, width: int) -> np.ndarray:
    """`n` frames of one RGB colour, `[n, height, width, 3]` uint8."""
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    frames[...] = np.asarray(color, dtype=np.uint8)
    return frames
