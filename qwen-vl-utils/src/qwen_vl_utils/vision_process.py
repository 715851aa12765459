"""fetch_video, extract_vision_info and process_vision_info (qwen-vl-utils 0.0.14 compatible).

Kept under upstream's module name so ``from qwen_vl_utils.vision_process import ...`` keeps working.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from .defaults import DEFAULTS, get_option
from .images import fetch_image, load_image, to_rgb  # noqa: F401  (re-exported)
from .readers import open_video
from .resize import (  # noqa: F401  (re-exported)
    ceil_by_factor,
    floor_by_factor,
    resize_frames,
    round_by_factor,
    smart_resize,
    video_target_size,
)
from .metadata import VideoMetadataDict
from .sampling import (  # noqa: F401
    frame_range,
    frame_timestamps,
    range_sample_fps,
    sample_fps,
    sample_indices,
    smart_nframes,
)

logger = logging.getLogger("qwen_vl_utils")

VideoOutput = Union[torch.Tensor, Tuple[torch.Tensor, Dict[str, Any]]]


def sample_video_frames(
    ele: Dict[str, Any], total_frames: int, video_fps: float, frame_times: Optional[Sequence[float]] = None
) -> List[int]:
    """Source indices fetch_video would sample from a video of ``total_frames`` at ``video_fps``,
    without opening it (time range, then smart_nframes, then uniform spacing over the range's frames).
    ``frame_times``: the real frame times of a variable-frame-rate video (VideoInfo.frame_times)."""
    first, last = frame_range(ele, total_frames, video_fps, frame_times)
    return sample_indices(first, last, smart_nframes(ele, total_frames=last - first + 1, video_fps=video_fps))


def _read_video_file(
    ele: Dict[str, Any], backend: Optional[str], image_patch_size: int
) -> Tuple[torch.Tensor, Dict[str, Any]]:
    """Sample, decode and resize the frames of ``ele["video"]`` (a path or URL): uint8 frames at the
    target size (each shrunk right after decoding) and metadata."""
    started = time.perf_counter()
    with open_video(ele["video"], backend) as video:
        info = video.info
        times = info.frame_times
        indices = sample_video_frames(ele, info.total_frames, info.fps, times)
        first, last = frame_range(ele, info.total_frames, info.fps, times)
        count, nframes = last - first + 1, len(indices)
        size = video_target_size(info.height, info.width, nframes, ele, image_patch_size=image_patch_size)
        frames = video.read(indices, size=size)
    metadata = VideoMetadataDict(
        fps=info.fps,
        frames_indices=indices,
        timestamps=frame_timestamps(indices, info.fps, times),
        total_num_frames=count,
        duration=count / info.fps,
        video_backend=info.backend,
        sample_fps=range_sample_fps(nframes, first, last, info.fps, times),
    )
    logger.debug(
        "%s: %d of %d frames (%d..%d) at %.3f fps with %s in %.3f s",
        info.path, nframes, info.total_frames, first, last, info.fps, info.backend, time.perf_counter() - started,
    )
    return frames, metadata


def _frame_tensor(frame: Any) -> torch.Tensor:
    if isinstance(frame, torch.Tensor) and frame.ndim == 3 and frame.shape[0] == 3 and frame.dtype == torch.uint8:
        return frame
    array = np.asarray(load_image(frame))
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def _frames_as_video(ele: Dict[str, Any]) -> Tuple[torch.Tensor, Dict[str, Any]]:
    """A video given as frames: a list/tuple of PIL images, arrays, tensors or image paths, or a
    ``[T, H, W, C]`` array / ``[T, C, H, W]`` tensor. All frames are used; the count is padded to a
    multiple of ``DEFAULTS.frame_factor`` by repeating the last frame."""
    source = ele["video"]
    if isinstance(source, np.ndarray) and source.ndim == 4:
        source = list(source)
    elif isinstance(source, torch.Tensor) and source.ndim == 4:
        source = list(source)
    if not isinstance(source, (list, tuple)) or len(source) == 0:
        raise ValueError(f"a video must be a path/URL or a non-empty list of frames, got {type(source).__name__}")
    frames = [_frame_tensor(frame) for frame in source]
    sizes = {tuple(f.shape[-2:]) for f in frames}
    if len(sizes) > 1:
        raise ValueError(f"all frames of a video must have the same size, got {sorted(sizes)}")
    given = len(frames)
    padded = ceil_by_factor(given, DEFAULTS.frame_factor)
    frames += [frames[-1]] * (padded - given)
    fps = float(get_option(ele, "sample_fps", DEFAULTS.frame_list_fps))
    raw_fps = float(get_option(ele, "raw_fps", fps))
    positions = list(range(given)) + [given - 1] * (padded - given)
    indices = [int(round(k * raw_fps / fps)) for k in positions]
    metadata = VideoMetadataDict(
        fps=raw_fps,
        frames_indices=indices,
        timestamps=[k / fps for k in positions],
        total_num_frames=int(round(padded / fps * raw_fps)),
        duration=given / fps,
        video_backend="frames",
        sample_fps=fps,
    )
    return torch.stack(frames), metadata


def fetch_video(
    ele: Dict[str, Any],
    image_patch_size: int = DEFAULTS.image_patch_size,
    return_video_sample_fps: bool = False,
    return_video_metadata: bool = False,
    backend: Optional[str] = None,
) -> Union[VideoOutput, Tuple[VideoOutput, float]]:
    """Sample, decode and resize the video of a message part; float ``[T, 3, H, W]`` in 0..255.

    ``ele["video"]``: a path (``file://`` allowed) or URL read with the chosen reader (see
    readers.resolve_backend; ``backend`` overrides it), or a list of frames. Frames: ``nframes`` or
    ``fps`` / ``min_frames`` / ``max_frames`` within ``video_start`` .. ``video_end`` seconds; size:
    ``resized_height``/``resized_width`` or ``min_pixels`` / ``max_pixels`` / ``total_pixels``; every
    absent key takes its value from DEFAULTS.

    Returns ``video``, ``(video, metadata)`` with ``return_video_metadata``, and either of those plus
    the sampling fps as a tuple with ``return_video_sample_fps`` (upstream's conventions). metadata:
    fps (source), frames_indices, timestamps (seconds), total_num_frames and duration (of the selected
    time range), video_backend, sample_fps.
    """
    if isinstance(ele.get("video"), str) or hasattr(ele.get("video"), "__fspath__"):
        frames, metadata = _read_video_file(ele, backend, image_patch_size)
        video = frames.float()  # already at the target size (resized frame by frame while decoding)
    else:
        frames, metadata = _frames_as_video(ele)
        nframes, _, height, width = frames.shape
        size = video_target_size(height, width, nframes, ele, image_patch_size=image_patch_size)
        video = resize_frames(frames, size)
    output = (video, metadata) if return_video_metadata else video
    if return_video_sample_fps:
        return output, metadata["sample_fps"]
    return output


_VISION_KEYS = ("image", "image_url", "video")


def extract_vision_info(conversations: Union[List[Dict[str, Any]], List[List[Dict[str, Any]]]]) -> List[Dict[str, Any]]:
    """The image and video parts of one conversation or a batch of conversations, in order.

    A part counts when its ``type`` is image / image_url / video or it has a non-None ``image``,
    ``image_url`` or ``video`` value (keys set to None, as Arrow rows carry, do not count).
    """
    if not conversations:
        return []
    if isinstance(conversations[0], dict):
        conversations = [conversations]
    parts = []
    for conversation in conversations:
        for message in conversation:
            content = message.get("content")
            if not isinstance(content, list):
                continue
            for ele in content:
                if not isinstance(ele, dict):
                    continue
                if ele.get("type") in _VISION_KEYS or any(ele.get(k) is not None for k in _VISION_KEYS):
                    parts.append(ele)
    return parts


def process_vision_info(
    conversations: Union[List[Dict[str, Any]], List[List[Dict[str, Any]]]],
    return_video_kwargs: bool = False,
    return_video_metadata: bool = False,
    image_patch_size: int = DEFAULTS.image_patch_size,
    backend: Optional[str] = None,
) -> Tuple[Any, ...]:
    """Load every image and video of the conversation(s), ready for the Qwen-VL processor.

    Returns ``(images, videos)`` or, with ``return_video_kwargs``, ``(images, videos, video_kwargs)``;
    images / videos are lists, or None when there are none. ``video_kwargs`` is
    ``{"do_sample_frames": False, "fps": [sample fps per video]}``; with ``return_video_metadata``
    each video is a ``(tensor, metadata)`` pair and ``fps`` is left out, as upstream does.
    """
    images: List[Image.Image] = []
    videos: List[VideoOutput] = []
    fps_list: List[float] = []
    for ele in extract_vision_info(conversations):
        if ele.get("image") is not None or ele.get("image_url") is not None:
            images.append(fetch_image(ele, image_patch_size=image_patch_size))
        elif ele.get("video") is not None:
            video, fps = fetch_video(
                ele,
                image_patch_size=image_patch_size,
                return_video_sample_fps=True,
                return_video_metadata=return_video_metadata,
                backend=backend,
            )
            videos.append(video)
            fps_list.append(fps)
        else:
            raise ValueError(f"a {ele.get('type', 'vision')} part has no 'image', 'image_url' or 'video' value: {ele}")
    video_kwargs: Dict[str, Any] = {"do_sample_frames": False}
    if not return_video_metadata:
        video_kwargs["fps"] = fps_list
    result = (images or None, videos or None)
    return result + (video_kwargs,) if return_video_kwargs else result


__all__: Sequence[str] = (
    "extract_vision_info",
    "fetch_image",
    "fetch_video",
    "process_vision_info",
    "sample_video_frames",
    "smart_nframes",
    "smart_resize",
)
