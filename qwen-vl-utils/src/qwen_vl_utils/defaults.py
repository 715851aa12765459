"""The one place where every default limit of qwen_vl_utils lives.

A message's vision part (``{"type": "video", "video": ..., "nframes": 16, ...}``) overrides any of
these per call; a key that is absent or set to ``None`` takes the default below. The values equal
qwen-vl-utils 0.0.14's module constants, so a message without keys is processed as upstream does.

Pixel limits are stored in *tokens* because the pixel value depends on the model's patch size:
``pixels = tokens * (image_patch_size * spatial_merge_size) ** 2``; for Qwen2-VL / Qwen2.5-VL
(``image_patch_size=14``) one token is 28 x 28 = 784 pixels, so ``min_pixels`` defaults to
128 * 784 = 100,352 and ``max_pixels`` to 768 * 784 = 602,112 for video frames.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Defaults:
    """Default frame, pixel and reader settings (read-only; override per message instead)."""

    fps: float = 2.0
    """Frames per second sampled from a video when the message gives neither ``nframes`` nor ``fps``."""

    min_frames: int = 4
    """Fewest frames sampled in ``fps`` mode (message key ``min_frames``; rounded up to ``frame_factor``)."""

    max_frames: int = 768
    """Most frames sampled in ``fps`` mode (message key ``max_frames``). Without the key the limit is
    ``min(max_frames, frames in the selected time range)``; rounded down to ``frame_factor``."""

    frame_factor: int = 2
    """The sampled frame count is a multiple of this (Qwen2-VL's temporal patch size: 2 frames make one
    temporal token). ``nframes`` is rounded to the nearest multiple, half to even like Python's round."""

    image_patch_size: int = 14
    """Vision patch side in pixels (14 for Qwen2-VL/Qwen2.5-VL, 16 for Qwen3-VL); argument of
    fetch_image / fetch_video / process_vision_info."""

    spatial_merge_size: int = 2
    """Patches merged per side into one token; resized sides are multiples of
    ``image_patch_size * spatial_merge_size`` (28 for Qwen2.5-VL)."""

    video_min_tokens: int = 128
    """Default ``min_pixels`` of a video frame, in tokens (128 x 784 = 100,352 pixels at patch 14)."""

    video_max_tokens: int = 768
    """Default ``max_pixels`` of a video frame, in tokens (768 x 784 = 602,112 pixels at patch 14).
    Unlike upstream, a message's ``max_pixels`` above this value is honoured, not clamped to it."""

    video_total_tokens: int = 115_200
    """Default ``total_pixels`` budget of a whole video, in tokens (upstream: 0.9 x MODEL_SEQ_LEN with
    MODEL_SEQ_LEN=128000). Each frame gets at most ``total_pixels / nframes * frame_factor`` pixels,
    but never less than ``min_pixels``."""

    image_min_tokens: int = 4
    """Default ``min_pixels`` of an image, in tokens (4 x 784 = 3,136 pixels at patch 14)."""

    image_max_tokens: int = 16_384
    """Default ``max_pixels`` of an image, in tokens (16,384 x 784 = 12,845,056 pixels at patch 14)."""

    max_aspect_ratio: float = 200.0
    """smart_resize raises ValueError when ``max(h, w) / min(h, w)`` exceeds this."""

    frame_list_fps: float = 2.0
    """Sampling rate assumed for a video given as a list of frames (message key ``sample_fps``); it is
    the ``fps`` returned in video_kwargs and sets the frames' timestamps."""

    video_reader: str = "decord"
    """Video reader used when neither the ``backend`` argument nor the environment variable
    ``reader_env_var`` names one. If decord is not installed, ``fallback_video_reader`` is used
    and a warning says so, once."""

    fallback_video_reader: str = "pyav"
    """Reader used when the default reader is not installed (never after a read error)."""

    reader_env_var: str = "QWEN_VL_UTILS_VIDEO_READER"
    """Environment variable that picks the video reader: ``decord`` or ``pyav``."""

    url_timeout: float = 30.0
    """Seconds allowed for downloading an ``http(s)://`` image."""

    def patch_factor(self, image_patch_size: int | None = None) -> int:
        """Side multiple of resized images/frames: ``image_patch_size * spatial_merge_size``."""
        patch = self.image_patch_size if image_patch_size is None else image_patch_size
        return int(patch * self.spatial_merge_size)

    def tokens_to_pixels(self, tokens: int, image_patch_size: int | None = None) -> int:
        """Pixels covered by ``tokens`` merged tokens at the given patch size."""
        return int(tokens) * self.patch_factor(image_patch_size) ** 2


DEFAULTS = Defaults()
"""The defaults in force. Override per message (``ele["nframes"]``, ``ele["max_pixels"]``, ...)."""


def get_option(ele: dict, key: str, default):
    """``ele[key]``, or ``default`` when the key is absent or ``None``.

    ``None`` counts as absent because datasets stored in Arrow give every content part every key
    (``{"type": "text", "text": ..., "video": None, "nframes": None}``).
    """
    value = ele.get(key)
    return default if value is None else value
