"""What a reader knows about a video before decoding it, and the read error both readers raise.

Kept apart from the readers so that both reader implementations (`backends.py`) and the public API
(`readers.py`) share them without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

# A video counts as constant-frame-rate when every frame's presentation time is within this share
# of a frame interval of `index / fps`; its timestamps are then `index / fps` exactly (upstream's).
CFR_TOLERANCE = 0.25


class VideoReadError(RuntimeError):
    """A video exists (or is a URL) but cannot be opened or decoded; the message names the file."""


@dataclass(frozen=True)
class VideoInfo:
    """What a reader knows about a video before decoding it.

    `height` / `width` are the displayed size (after the container's rotation, see `rotation`).
    `frame_times` is None for constant-frame-rate video (frame i is shown at `i / fps`); for
    variable-frame-rate video it holds every frame's presentation time in seconds from the first
    frame, in presentation order (`fps` is then the average rate, `total_frames / duration`).
    `rotation` is the display rotation in degrees counter-clockwise (0, 90, 180 or 270) that the
    readers apply to every frame.
    """

    path: str
    total_frames: int
    fps: float
    duration: float
    height: int
    width: int
    backend: str
    frame_times: Optional[Tuple[float, ...]] = None
    rotation: int = 0


def variable_frame_times(times: Sequence[float], fps: float) -> Optional[Tuple[float, ...]]:
    """Presentation times (seconds, any order) -> None when they are `index / fps` within
    CFR_TOLERANCE of a frame, else the sorted times relative to the first frame."""
    ordered = sorted(float(t) for t in times)
    if not ordered or fps <= 0:
        return None
    start = ordered[0]
    rel = [t - start for t in ordered]
    if all(abs(t * fps - i) <= CFR_TOLERANCE for i, t in enumerate(rel)):
        return None
    return tuple(rel)


def normalize_rotation(degrees: Optional[float]) -> int:
    """A display rotation (any sign, e.g. PyAV's -90) as 0, 90, 180 or 270 counter-clockwise."""
    if not degrees:
        return 0
    return int(round(float(degrees) / 90.0)) % 4 * 90
