"""Video metadata that the HF processor accepts as is and that also carries frame timestamps.

transformers builds `VideoMetadata(**meta)` from every dict passed as `video_metadata=` and rejects
unknown keys, so the upstream pattern `processor(..., video_metadata=metas)` breaks if the metadata
gains keys. The keys of `VideoMetadataDict` are therefore exactly transformers' VideoMetadata fields,
and the two values this package adds (the timestamp of every sampled frame, the sampling fps) are
readable by key or attribute without being keys.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

# Values readable as meta["timestamps"] / meta.timestamps but not listed by keys() / **meta.
DERIVED_KEYS = ("timestamps", "sample_fps")


class VideoMetadataDict(dict):
    """fps, frames_indices, total_num_frames, duration, video_backend (+ width, height) as keys;
    `timestamps` (seconds of each sampled frame) and `sample_fps` as derived values."""

    def __init__(self, *, timestamps: Sequence[float], sample_fps: float, **fields: Any) -> None:
        super().__init__(**fields)
        self.timestamps = [float(t) for t in timestamps]
        self.sample_fps = float(sample_fps)

    def __missing__(self, key: str) -> Any:
        if key in DERIVED_KEYS:
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Optional[Any] = None) -> Any:
        if key in DERIVED_KEYS:
            return getattr(self, key)
        return super().get(key, default)

    def __reduce__(self):
        # Keep the derived values through pickling (multiprocess data loaders).
        return (_rebuild, (dict(self), self.timestamps, self.sample_fps))


def _rebuild(fields: dict, timestamps: list, sample_fps: float) -> VideoMetadataDict:
    return VideoMetadataDict(timestamps=timestamps, sample_fps=sample_fps, **fields)
