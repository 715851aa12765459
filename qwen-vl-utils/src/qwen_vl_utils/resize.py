"""Target sizes (smart_resize and the video pixel budget) and the frame resize itself."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .defaults import DEFAULTS, get_option


def round_by_factor(number: float, factor: int) -> int:
    """Nearest multiple of ``factor`` (ties to even, as Python's ``round``)."""
    return round(number / factor) * factor


def ceil_by_factor(number: float, factor: int) -> int:
    """Smallest multiple of ``factor`` that is >= ``number``."""
    return math.ceil(number / factor) * factor


def floor_by_factor(number: float, factor: int) -> int:
    """Largest multiple of ``factor`` that is <= ``number``."""
    return math.floor(number / factor) * factor


def smart_resize(
    height: int,
    width: int,
    factor: int = DEFAULTS.patch_factor(),
    min_pixels: Optional[int] = None,
    max_pixels: Optional[int] = None,
) -> Tuple[int, int]:
    """(height, width) with both sides multiples of ``factor``, area within [min_pixels, max_pixels]
    (up to the rounding of each side) and the aspect ratio kept as closely as possible.

    Each side is first rounded to the nearest multiple of ``factor`` (at least ``factor``). If the
    area is above ``max_pixels`` both sides shrink by the same ratio and round down; if it is below
    ``min_pixels`` they grow by the same ratio and round up. Defaults are the image limits
    (``DEFAULTS.image_min_tokens`` / ``image_max_tokens`` tokens of ``factor`` x ``factor``).

    Raises ValueError (upstream raises AssertionError, ZeroDivisionError or returns a zero side) when
    ``max_pixels < min_pixels``, a side is not positive, the aspect ratio exceeds
    ``DEFAULTS.max_aspect_ratio``, or no multiple of ``factor`` fits under ``max_pixels``.
    """
    if max_pixels is None:
        max_pixels = DEFAULTS.image_max_tokens * factor**2
    if min_pixels is None:
        min_pixels = DEFAULTS.image_min_tokens * factor**2
    if max_pixels < min_pixels:
        raise ValueError(f"smart_resize: max_pixels ({max_pixels}) must be >= min_pixels ({min_pixels})")
    if height <= 0 or width <= 0:
        raise ValueError(f"smart_resize: height and width must be positive, got {height}x{width}")
    ratio = max(height, width) / min(height, width)
    if ratio > DEFAULTS.max_aspect_ratio:
        raise ValueError(
            f"smart_resize: aspect ratio {ratio} of {height}x{width} exceeds {DEFAULTS.max_aspect_ratio}"
        )
    new_h = max(factor, round_by_factor(height, factor))
    new_w = max(factor, round_by_factor(width, factor))
    if new_h * new_w > max_pixels:
        scale = math.sqrt((height * width) / max_pixels)
        new_h = floor_by_factor(height / scale, factor)
        new_w = floor_by_factor(width / scale, factor)
        if new_h <= 0 or new_w <= 0:
            raise ValueError(
                f"smart_resize: {height}x{width} cannot fit in max_pixels={max_pixels} with sides that "
                f"are positive multiples of {factor} (the short side would round down to 0)"
            )
    elif new_h * new_w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        new_h = ceil_by_factor(height * scale, factor)
        new_w = ceil_by_factor(width * scale, factor)
    return new_h, new_w


def video_pixel_limits(nframes: int, ele: dict, image_patch_size: int = DEFAULTS.image_patch_size) -> Tuple[int, float]:
    """(min_pixels, max_pixels) of one frame of a video sampled to ``nframes`` frames.

    ``min_pixels`` / ``max_pixels`` / ``total_pixels`` come from ``ele`` or DEFAULTS. The per-frame
    maximum is ``min(max_pixels, total_pixels / nframes * frame_factor)``, raised to ``min_pixels``
    when the total budget is smaller than that (the per-frame floor wins).
    """
    min_pixels = get_option(ele, "min_pixels", DEFAULTS.tokens_to_pixels(DEFAULTS.video_min_tokens, image_patch_size))
    max_pixels = get_option(ele, "max_pixels", DEFAULTS.tokens_to_pixels(DEFAULTS.video_max_tokens, image_patch_size))
    total_pixels = get_option(
        ele, "total_pixels", DEFAULTS.tokens_to_pixels(DEFAULTS.video_total_tokens, image_patch_size)
    )
    if max_pixels < min_pixels:
        raise ValueError(f"video max_pixels ({max_pixels}) must be >= min_pixels ({min_pixels})")
    budget = total_pixels / max(int(nframes), 1) * DEFAULTS.frame_factor
    return min_pixels, max(min(max_pixels, budget), min_pixels)


def video_target_size(
    height: int, width: int, nframes: int, ele: dict, image_patch_size: int = DEFAULTS.image_patch_size
) -> Tuple[int, int]:
    """The (height, width) fetch_video resizes ``nframes`` frames of ``height`` x ``width`` to.

    ``ele["resized_height"]`` and ``ele["resized_width"]``, when both are given, win (rounded by
    smart_resize with image limits, as upstream). Otherwise the frame is fitted into
    ``video_pixel_limits(nframes, ele)``.
    """
    factor = DEFAULTS.patch_factor(image_patch_size)
    resized_h, resized_w = ele.get("resized_height"), ele.get("resized_width")
    if resized_h is not None and resized_w is not None:
        return smart_resize(resized_h, resized_w, factor=factor)
    min_pixels, max_pixels = video_pixel_limits(nframes, ele, image_patch_size)
    return smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)


def resize_frames(frames: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Resize ``[T, 3, H, W]`` frames to ``size`` = (h, w): bicubic with antialiasing, float output.

    uint8 input is rounded and clamped to 0..255 after resizing (values stay integral), which gives
    the same numbers as upstream's torchvision resize of uint8 frames followed by ``.float()``.
    """
    if frames.ndim != 4:
        raise ValueError(f"resize_frames expects [T, C, H, W], got shape {tuple(frames.shape)}")
    h, w = int(size[0]), int(size[1])
    is_uint8 = frames.dtype == torch.uint8
    out = frames.float()
    if tuple(out.shape[-2:]) != (h, w):
        out = F.interpolate(out, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
        if is_uint8:
            out = out.clamp_(0, 255).round_()
    return out
