"""qwen_vl_utils: VersaVid-R1's own video/image preprocessing for Qwen2-VL / Qwen2.5-VL.

API-compatible with the public functions of qwen-vl-utils 0.0.14 (process_vision_info, fetch_video,
fetch_image, smart_resize, smart_nframes, extract_vision_info), with every limit taken from the
message or from the one documented DEFAULTS, per-frame indices and timestamps in the metadata, and
readers that decode only the sampled frames. See README.md in this folder.
"""
from .defaults import DEFAULTS, Defaults
from .images import fetch_image, load_image
from .readers import (
    VideoFile,
    VideoInfo,
    VideoReadError,
    get_video_info,
    open_video,
    read_video_frames,
    resolve_backend,
)
from .metadata import VideoMetadataDict
from .resize import resize_frames, smart_resize, video_pixel_limits, video_target_size
from .sampling import (
    first_frame_from,
    frame_range,
    frame_shown_at,
    frame_timestamps,
    range_sample_fps,
    sample_fps,
    sample_indices,
    smart_nframes,
)
from .vision_process import extract_vision_info, fetch_video, process_vision_info, sample_video_frames

__version__ = "0.0.14+versavid"

__all__ = [
    "DEFAULTS",
    "Defaults",
    "VideoFile",
    "VideoInfo",
    "VideoMetadataDict",
    "VideoReadError",
    "extract_vision_info",
    "fetch_image",
    "fetch_video",
    "first_frame_from",
    "frame_range",
    "frame_shown_at",
    "frame_timestamps",
    "get_video_info",
    "load_image",
    "open_video",
    "process_vision_info",
    "range_sample_fps",
    "read_video_frames",
    "resize_frames",
    "resolve_backend",
    "sample_fps",
    "sample_indices",
    "sample_video_frames",
    "smart_nframes",
    "smart_resize",
    "video_pixel_limits",
    "video_target_size",
]
