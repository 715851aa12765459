"""Writing real H.264 mp4 files with PyAV (no system ffmpeg needed).

Used by the demo-data generator, the tests and the benchmarks, which all make the videos they need
instead of shipping binaries.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import av
import numpy as np

# Time base of files written with explicit frame times: 1 ms steps.
_TIMED_TIME_BASE = Fraction(1, 1000)


def write_mp4(
    path: Union[str, Path],
    frames: Union[np.ndarray, Iterable[np.ndarray]],
    fps: float,
    crf: int = 18,
    times: Optional[Sequence[float]] = None,
    rotation: int = 0,
) -> Path:
    """Encode RGB uint8 frames (`[T, H, W, 3]` array or an iterable of `[H, W, 3]`) as H.264 mp4.

    Height and width must be even (yuv420p). `crf` 18 keeps solid colours within a few levels of
    their value, which the tests rely on when they compare decoded pixels.
    `times`: each frame's presentation time in seconds (increasing), for a variable-frame-rate file;
    `fps` is then only the nominal rate. `rotation`: display rotation in degrees counter-clockwise,
    written as the container's display matrix (players and the readers show the frames rotated).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast"}
        if times is not None:
            stream.time_base = _TIMED_TIME_BASE
        if rotation:
            stream.set_display_rotation(rotation)
        count = 0
        for frame in frames:
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            if count == 0:
                stream.height, stream.width = frame.shape[:2]
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if times is not None:
                video_frame.pts = int(round(times[count] / _TIMED_TIME_BASE))
                video_frame.time_base = _TIMED_TIME_BASE
            for packet in stream.encode(video_frame):
                container.mux(packet)
            count += 1
        if count == 0:
            raise ValueError(f"write_mp4({path}): no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    return path


def solid_color_frames(color: tuple[int, int, int], n: int, height: int, width: int) -> np.ndarray:
    """`n` frames of one RGB colour, `[n, height, width, 3]` uint8."""
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    frames[...] = np.asarray(color, dtype=np.uint8)
    return frames


JPEG_SUFFIXES = (".jpg", ".jpeg")


def jpeg_frames(folder: Union[str, Path]) -> list[Path]:
    """The JPEG frames of a folder in frame order: numbered names (`00001.jpg`, `frame_12.jpg`) by number, the
    rest by name. Raises ValueError for a folder without JPEGs."""
    import re

    files = [p for p in Path(folder).iterdir() if p.suffix.lower() in JPEG_SUFFIXES and p.is_file()]
    if not files:
        raise ValueError(f"{folder}: no .jpg frames in this folder")

    def key(p: Path):
        digits = re.findall(r"\d+", p.stem)
        return (0, int(digits[-1]), p.name) if digits else (1, 0, p.name)

    return sorted(files, key=key)


def remux_jpeg_folder(folder: Union[str, Path], out: Union[str, Path], fps: float) -> Path:
    """A folder of JPEG frames as a Motion-JPEG video (.mkv) at `fps`, frame k at k / fps seconds.

    The JPEG files become the video's packets unchanged (no decoding, no re-encoding), so a decoder returns the
    same pixels as decoding each file; every frame must have the first frame's size. Written to a temporary
    name and renamed, so an existing `out` is always complete.
    """
    from PIL import Image

    frames = jpeg_frames(folder)
    with Image.open(frames[0]) as first:
        width, height = first.size
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.mkv")
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("mjpeg", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p"  # container metadata only: the decoder reads each JPEG's own format
        # Fixed here: the Matroska muxer replaces the stream's time base (1/1000) once the header is written,
        # and packets stamped with that later value would be k milliseconds apart instead of k / fps seconds.
        frame_base = Fraction(1) / rate
        stream.time_base = frame_base
        for k, path in enumerate(frames):
            with Image.open(path) as img:
                if img.size != (width, height):
                    raise ValueError(f"{path}: {img.size[0]}x{img.size[1]} frame in a {width}x{height} folder")
            packet = av.Packet(path.read_bytes())
            packet.stream = stream
            packet.pts = packet.dts = k
            packet.time_base = frame_base
            container.mux(packet)
    tmp.replace(out)
    return out
