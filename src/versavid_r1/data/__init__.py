"""JSONL rows, validation, and video loading with the two proxy tasks (DarkEventInfer, MixVidQA).

    from versavid_r1.data import VideoConfig, load_rows, load_video, make_conversation
    cfg = VideoConfig()                      # paper defaults: 16 frames, 128·28·28..196·28·28 px
    rows = load_rows("train.jsonl", cfg)     # raises DataValidationError listing every bad row
    clip = load_video(rows[0], cfg)          # VideoClip: uint8 [T, 3, H, W], timestamps, sources, fps
    messages = make_conversation(rows[0], cfg)
    processor(text=..., videos=[clip.frames], **video_processor_kwargs(clip))

Modules: config (VideoConfig), args (VideoArguments: its flags / YAML keys, for training and eval),
schema (row schema, validation), jsonl (reading rows), limits (what training and the judges enforce),
video_checks (validation against the videos, decoding included), parallel (validation in processes),
video (load_video, cache),
proxy (masking and interleaving), conversation (prompt messages), demo (synthetic dataset),
builders (DarkEventInfer / MixVidQA rows from annotations), cli (the scripts' entry points).
"""
from versavid_r1.data.args import VideoArguments
from versavid_r1.data.config import ROW_VIDEO_OVERRIDES, VideoConfig
from versavid_r1.data.conversation import (
    PolicyPrompt,
    clean_messages,
    make_conversation,
    prompt_text,
    resolve_policy_prompt,
)
from versavid_r1.data.schema import (
    VIDEO_PATHS_KEY,
    DataValidationError,
    RowIssue,
    ValidationReport,
    load_rows,
    normalize_row,
    resolve_video_paths,
    sampling_options,
    validate_file,
    validate_row,
)
from versavid_r1.data.video import (
    VideoClip,
    clear_video_cache,
    load_video,
    video_cache_info,
    video_metadata,
    video_processor_kwargs,
)

__all__ = [
    "ROW_VIDEO_OVERRIDES",
    "VIDEO_PATHS_KEY",
    "DataValidationError",
    "PolicyPrompt",
    "RowIssue",
    "ValidationReport",
    "VideoArguments",
    "VideoClip",
    "VideoConfig",
    "clean_messages",
    "clear_video_cache",
    "load_rows",
    "load_video",
    "make_conversation",
    "normalize_row",
    "prompt_text",
    "resolve_policy_prompt",
    "resolve_video_paths",
    "sampling_options",
    "validate_file",
    "validate_row",
    "video_cache_info",
    "video_metadata",
    "video_processor_kwargs",
]
