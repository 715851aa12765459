"""Loading images (path, file://, http(s)://, data:image base64, PIL, array) and fetch_image."""
from __future__ import annotations

import base64
import os
import urllib.request
from io import BytesIO
from typing import Any, Dict

import numpy as np
import torch
from PIL import Image

from .defaults import DEFAULTS, get_option
from .resize import smart_resize


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy of ``image``; transparent pixels of RGBA images are composited on white."""
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.split()[3])
        return background
    return image.convert("RGB")


def _from_array(array: Any) -> Image.Image:
    """PIL image from an ``[H, W]``/``[H, W, C]`` array or a ``[C, H, W]`` tensor (uint8 values)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
            array = array.permute(1, 2, 0)
        array = array.numpy()
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0:
            array = array * 255.0
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    if array.ndim not in (2, 3):
        raise ValueError(f"an image array must be [H, W] or [H, W, C], got shape {array.shape}")
    return Image.fromarray(array)


def load_image(source: Any) -> Image.Image:
    """RGB PIL image from a PIL image, array/tensor, local path, ``file://`` path, ``http(s)://`` URL,
    or ``data:image/...;base64,`` string (an OpenAI-style ``{"url": ...}`` dict works too)."""
    if isinstance(source, dict) and "url" in source:
        source = source["url"]
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        image = _from_array(source)
    elif isinstance(source, (str, os.PathLike)):
        image = _open_image(os.fspath(source))
    else:
        raise ValueError(
            "unrecognised image input: expected a path, file:// or http(s):// URL, base64 data URL, "
            f"PIL.Image or array, got {type(source).__name__}"
        )
    return to_rgb(image)


def _open_image(source: str) -> Image.Image:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=DEFAULTS.url_timeout) as response:
            data = response.read()
        return _decode_bytes(data, source)
    if source.startswith("data:image"):
        if "base64," not in source:
            raise ValueError("a data:image URL must be base64 encoded ('...;base64,<data>')")
        return _decode_bytes(base64.b64decode(source.split("base64,", 1)[1]), "data:image URL")
    if source.startswith("file://"):
        source = source[len("file://"):]
    image = Image.open(source)  # FileNotFoundError names the file
    image.load()
    return image


def _decode_bytes(data: bytes, name: str) -> Image.Image:
    try:
        with BytesIO(data) as bio:
            image = Image.open(bio)
            image.load()
            return image
    except Exception as e:
        raise ValueError(f"cannot decode image from {name}: {e}") from e


def fetch_image(ele: Dict[str, Any], image_patch_size: int = DEFAULTS.image_patch_size) -> Image.Image:
    """Load ``ele["image"]`` (or ``ele["image_url"]``) and resize it (bicubic) to the smart_resize size.

    Size: ``resized_height`` / ``resized_width`` when both are given (rounded to the patch grid),
    else the image's own size fitted into ``min_pixels`` .. ``max_pixels`` (defaults
    ``DEFAULTS.image_min_tokens`` / ``image_max_tokens`` tokens).
    """
    source = get_option(ele, "image", None)
    if source is None:
        source = get_option(ele, "image_url", None)
    if source is None:
        raise ValueError("an image part needs an 'image' or 'image_url' value")
    image = load_image(source)
    factor = DEFAULTS.patch_factor(image_patch_size)
    resized_h, resized_w = ele.get("resized_height"), ele.get("resized_width")
    if resized_h is not None and resized_w is not None:
        height, width = smart_resize(resized_h, resized_w, factor=factor)
    else:
        width, height = image.size
        height, width = smart_resize(
            height,
            width,
            factor=factor,
            min_pixels=get_option(ele, "min_pixels", DEFAULTS.tokens_to_pixels(DEFAULTS.image_min_tokens, image_patch_size)),
            max_pixels=get_option(ele, "max_pixels", DEFAULTS.tokens_to_pixels(DEFAULTS.image_max_tokens, image_patch_size)),
        )
    return image.resize((width, height), resample=Image.Resampling.BICUBIC)
