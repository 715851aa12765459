"""Processor inputs for video prompts: token ids, `pixel_values_videos`, `video_grid_thw`, `second_per_grid_ts`.

The trainer decodes a prompt's video once (``versavid_r1.data.load_video``: proxy tasks applied, cached) and
runs the model's own processor (Qwen2-VL, Qwen2.5-VL, Qwen3-VL / Qwen3.5; `versavid_r1.families`) on the decoded
frames here, with the video metadata that family needs to encode time: the sampling rate for Qwen2.5-VL
(`second_per_grid_ts`), the frames' real indices and frame rate for Qwen3-VL / Qwen3.5 (their text timestamps;
`versavid_r1.data.video.timeline_metadata`). The result of one prompt, `PromptVideoInputs`,
is used three times: for generation (the rows of a batch are concatenated by `collate_generation_fields`),
for the log-probabilities of the loss (`collate_video_fields`, per chunk of rows) and, with vLLM, for
the multimodal request (`versavid_r1.trainer.vllm_video`).

Video patches of several rows are concatenated along dim 0 (`pixel_values_videos` is
``[sum of T*H*W patches, C*t*p*p]``), so a subset of rows is always rebuilt from the per-row tensors
kept here, never by slicing a concatenated tensor blindly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

# Keys of the processor output that carry video; everything the model's forward needs for video.
VIDEO_FIELDS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")

# mm_token_type_ids values used by Qwen2(.5)-VL's get_rope_index: text 0, image 1, video 2.
TEXT_TYPE, IMAGE_TYPE, VIDEO_TYPE = 0, 1, 2


@dataclass
class PromptVideoInputs:
    """Everything the trainer needs about one prompt, computed once per unique prompt of a batch."""

    input_ids: list[int]
    """Prompt token ids, video placeholders already expanded to one `<|video_pad|>` per merged patch."""
    video_fields: dict[str, torch.Tensor] = field(default_factory=dict)
    """`pixel_values_videos` [P, D], `video_grid_thw` [n, 3], and (Qwen2.5-VL) `second_per_grid_ts` [n];
    empty for a prompt without video. CPU tensors."""
    frames: list[torch.Tensor] = field(default_factory=list)
    """The uint8 frames [T, 3, H, W] of each video exactly as the processor saw them (aligned; for vLLM)."""
    second_per_grid_ts: list[float] = field(default_factory=list)
    """Qwen2(.5)-VL: seconds of video per temporal grid (temporal_patch_size frames) of each video, as the processor
    was told through the video metadata. Empty for Qwen3-VL / Qwen3.5 (time is text in their prompt)."""
    video_metadata: list[dict] = field(default_factory=list)
    """The `video_metadata` the processor got for each video; the vLLM request carries the same (`vllm_video`)."""
    placeholder_ids: list[int] = field(default_factory=list)
    """The prompt ids before the processor expanded the videos (one `<|vision_start|><|video_pad|><|vision_end|>`
    per video, as the chat template renders it): what vLLM takes, since it expands each video itself."""


def vision_token_ids(tokenizer, config=None) -> list[int]:
    """Ids of the vision placeholder/delimiter tokens known to `tokenizer` (and the model `config`).

    They must never be sampled: a sampled `<|video_pad|>` or `<|image_pad|>` makes the next forward fail
    ("video features and video tokens do not match"); the others are meaningless inside an answer.
    """
    from versavid_r1.modeling import vision_special_token_ids

    ids = set(vision_special_token_ids(tokenizer))
    if config is not None:
        for name in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
            tid = getattr(config, name, None)
            if isinstance(tid, int) and tid >= 0:
                ids.add(tid)
    return sorted(ids)


def tokens_to_suppress(tokenizer, model_config) -> list[int]:
    """Token ids generation must never sample: the vision tokens, plus embedding rows past the tokenizer.

    Qwen models pad the embedding matrix beyond the tokenizer (151,665 tokens vs 152,064 rows); those ids
    decode to nothing and cannot be re-tokenised, so a sampled one silently breaks the rewards.
    """
    ids = set(vision_token_ids(tokenizer, model_config))
    text_config = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    vocab_size = getattr(text_config, "vocab_size", None) or getattr(model_config, "vocab_size", None)
    if vocab_size:
        ids.update(range(len(tokenizer), int(vocab_size)))
    return sorted(ids)


def _spatial_factor(processor) -> int:
    vp = processor.video_processor
    return int(vp.patch_size) * int(vp.merge_size)


def align_frames(
    processor, frames: torch.Tensor, min_pixels: Optional[int] = None, max_pixels: Optional[int] = None
) -> torch.Tensor:
    """`frames` (uint8 [T, 3, H, W]) as the processor must see them: both sides multiples of patch*merge (28).

    The default loader already sizes frames so (qwen-vl-utils' rule); a custom `video_loader` may not. Such
    frames are resized HERE, once, to the size the processor's own resize would pick (transformers'
    `smart_resize` within `[min_pixels, max_pixels]`, the processor's `size` when not given), with the
    loader's interpolation (qwen-vl-utils bicubic + antialias, rounded to uint8). The processor then runs
    with `do_resize=False` and vLLM gets these same frames (it cannot take unaligned ones with
    `do_resize=False`), so the policy's two generation paths and the loss see identical pixels.
    """
    factor = _spatial_factor(processor)
    height, width = int(frames.shape[-2]), int(frames.shape[-1])
    if height % factor == 0 and width % factor == 0:
        return frames
    import qwen_vl_utils as qvu
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import smart_resize

    size = processor.video_processor.size
    lo = int(min_pixels if min_pixels is not None else size["shortest_edge"])
    hi = int(max_pixels if max_pixels is not None else size["longest_edge"])
    target = smart_resize(height, width, factor=factor, min_pixels=lo, max_pixels=hi)
    return qvu.resize_frames(frames, target).to(torch.uint8)


def video_processor_kwargs(metadata: Sequence[dict]) -> dict:
    """`videos_kwargs` for the processor so that it uses the (aligned) frames as given.

    - `do_resize=False`: the frames are already sized (`align_frames`); the processor's own min/max pixels
      would otherwise silently override the configured ones.
    - `video_metadata`: how the family encodes time (`clip_metadata`); without it transformers assumes 24 fps.
    - Frames are never re-sampled (`do_sample_frames=False`).
    """
    return {"do_sample_frames": False, "do_resize": False, "cap_pixels_per_frame": False,
            "video_metadata": [dict(m) for m in metadata]}


def video_metadata_at(frames: torch.Tensor, second_per_grid_ts: float, temporal_patch: int) -> dict:
    """Video metadata of already-sampled `frames` from which the processor (transformers', and vLLM's call of
    it) computes exactly `second_per_grid_ts`: the frames described as a whole video at
    fps = temporal_patch / second_per_grid_ts (`versavid_r1.data.video.frames_metadata`)."""
    from versavid_r1.data.video import frames_metadata

    return frames_metadata(frames, temporal_patch / float(second_per_grid_ts))


def for_processor(video_config: Any, processor) -> Any:
    """`video_config` with the processor's patch size (`image_patch_size`: 14, or 16 for Qwen3-VL / Qwen3.5), so the
    loader sizes frames as the model's own pipeline does (qwen-vl-utils with that patch size) and they never need a
    second resize (`align_frames`)."""
    import dataclasses
    import logging

    patch = getattr(getattr(processor, "video_processor", None), "patch_size", None)
    if video_config is None or not isinstance(patch, int) or video_config.image_patch_size == patch:
        return video_config
    logging.getLogger(__name__).info("video frames sized for the processor's patch size %d (was %d)", patch,
                                     video_config.image_patch_size)
    return dataclasses.replace(video_config, image_patch_size=patch)


def check_time_encoding(processor, time_encoding: str) -> None:
    """Refuse a time encoding the model cannot take: `reference` (1.0 s per grid, the authors' Qwen2.5-VL inputs)
    has no meaning for Qwen3-VL / Qwen3.5, whose prompt states each frame group's real time as text."""
    from versavid_r1.families import uses_text_timestamps

    if time_encoding != "absolute" and uses_text_timestamps(processor):
        raise ValueError(f"video_time_encoding {time_encoding!r} applies to Qwen2.5-VL only; Qwen3-VL and Qwen3.5 "
                         "print each frame group's real time in the prompt (use 'absolute')")


def render_prompt(processor, messages: list[dict], chat_template_kwargs: Optional[dict] = None) -> str:
    """The prompt text (chat template, generation prompt added), one video placeholder per video part."""
    return processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, **(chat_template_kwargs or {})
    )


def temporal_patch_size(processor) -> int:
    """Frames per temporal grid of the processor's video patches (2 for every supported family)."""
    return int(processor.video_processor.temporal_patch_size)


def clip_second_per_grid_ts(processor, clip: Any, time_encoding: str = "absolute") -> float:
    """Seconds per temporal grid of a decoded clip: temporal_patch_size / its sampling fps (`absolute`), or
    the authors' fixed 1.0 s (`reference`); `versavid_r1.data.config.time_fps`."""
    from versavid_r1.data.config import time_fps

    tps = temporal_patch_size(processor)
    return tps / time_fps(float(clip.fps), time_encoding, tps)


def build_prompt_inputs(
    processor,
    messages: list[dict],
    clips: Sequence[Any],
    min_pixels: Optional[int] = None,
    max_pixels: Optional[int] = None,
    chat_template_kwargs: Optional[dict] = None,
    second_per_grid_ts: Optional[Sequence[float]] = None,
    time_encoding: str = "absolute",
) -> PromptVideoInputs:
    """Run the processor on one prompt and its decoded clips (`VideoClip`: frames uint8 [T,3,H,W], fps).

    Frames that are not aligned to patch x merge pixels (28, or 32 for Qwen3-VL / Qwen3.5) are resized first
    (`align_frames`). Qwen2(.5)-VL: `second_per_grid_ts` (one per clip) sets the temporal spacing the processor
    computes (through the metadata fps); default: each clip's own under `time_encoding`
    (`clip_second_per_grid_ts`: real seconds under `absolute`, 1.0 under `reference`). Qwen3-VL / Qwen3.5: the
    metadata carries the frames' real times (`clip_metadata`). The vLLM request carries the same metadata.
    """
    text = render_prompt(processor, messages, chat_template_kwargs)
    n_placeholders = text.count(processor.video_token)
    if n_placeholders != len(clips):
        raise ValueError(
            f"the prompt has {n_placeholders} video placeholder(s) but {len(clips)} video(s) were loaded; "
            "every video part of the user turn needs exactly one decoded clip"
        )
    if not clips:
        ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
        return PromptVideoInputs(input_ids=list(ids), placeholder_ids=list(ids))
    frames = []
    for c in clips:
        f = c.frames if isinstance(c.frames, torch.Tensor) else torch.as_tensor(c.frames)
        if f.dtype != torch.uint8 or f.ndim != 4 or f.shape[1] != 3:
            raise ValueError(f"video frames must be uint8 [T, 3, H, W], got {tuple(f.shape)} {f.dtype}")
        frames.append(align_frames(processor, f, min_pixels, max_pixels))
    spg, metadata = clip_metadata(processor, clips, frames, second_per_grid_ts, time_encoding)
    out = processor(
        text=[text],
        videos=frames,
        return_tensors="pt",
        videos_kwargs=video_processor_kwargs(metadata),
    )
    fields = {k: out[k] for k in VIDEO_FIELDS if k in out and out[k] is not None}
    if "second_per_grid_ts" in fields and not isinstance(fields["second_per_grid_ts"], torch.Tensor):
        fields["second_per_grid_ts"] = torch.tensor(fields["second_per_grid_ts"], dtype=torch.float32)
    placeholders = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    return PromptVideoInputs(
        input_ids=out["input_ids"][0].tolist(), video_fields=fields, frames=frames, second_per_grid_ts=spg,
        video_metadata=metadata, placeholder_ids=list(placeholders),
    )


def clip_metadata(
    processor, clips: Sequence[Any], frames: Sequence[torch.Tensor], second_per_grid_ts: Optional[Sequence[float]],
    time_encoding: str,
) -> tuple[list[float], list[dict]]:
    """(seconds per grid, `video_metadata`) of each clip as the processor's family encodes time.

    Qwen2(.5)-VL: the frames described as a whole video at temporal_patch / second_per_grid_ts fps (default: each
    clip's own under `time_encoding`). Qwen3-VL / Qwen3.5: the frames' real indices and frame rate
    (`timeline_metadata`), so the printed timestamps are the clip's real times.
    """
    from versavid_r1.data.video import timeline_metadata
    from versavid_r1.families import uses_text_timestamps

    check_time_encoding(processor, time_encoding)
    if uses_text_timestamps(processor):
        if second_per_grid_ts is not None:
            raise ValueError("second_per_grid_ts applies to Qwen2(.5)-VL; Qwen3-VL and Qwen3.5 take the frames' times")
        return [], [timeline_metadata(c, f) for c, f in zip(clips, frames)]
    spg = ([clip_second_per_grid_ts(processor, c, time_encoding) for c in clips] if second_per_grid_ts is None
           else second_per_grid_ts)
    spg = [float(x) for x in spg]
    if len(spg) != len(clips):
        raise ValueError(f"{len(clips)} videos but {len(spg)} second_per_grid_ts values")
    tps = temporal_patch_size(processor)
    return spg, [video_metadata_at(f, s, tps) for f, s in zip(frames, spg)]


def row_key(row: dict) -> str:
    """A stable key of a data row (rows are JSON-like dicts), to process each unique prompt once per batch.

    Keys whose value is None are left out: a batch pads every row with the keys of the others (`uniform_keys`),
    and the same row drawn alone (a replacement, a prefetch) must keep the same key."""
    return json.dumps({k: v for k, v in row.items() if v is not None}, sort_keys=True, default=str)


def collate_video_fields(rows: Sequence[Optional[PromptVideoInputs]], device=None) -> dict[str, torch.Tensor]:
    """Concatenate the video tensors of `rows` in row order (rows without video contribute nothing)."""
    present = [r for r in rows if r is not None and r.video_fields]
    if not present:
        return {}
    keys = [k for k in VIDEO_FIELDS if k in present[0].video_fields]
    for r in present:
        if [k for k in VIDEO_FIELDS if k in r.video_fields] != keys:
            raise ValueError("rows of one batch disagree on their video fields (mixed model families?)")
    fields = {k: torch.cat([r.video_fields[k] for r in present], dim=0) for k in keys}
    if device is not None:
        fields = {k: v.to(device, non_blocking=True) for k, v in fields.items()}
    return fields


def mm_token_type_ids(
    input_ids: torch.Tensor, video_token_id: int, image_token_id: Optional[int] = None
) -> torch.Tensor:
    """Qwen2(.5)-VL `mm_token_type_ids` for any (prompt+completion) ids: 2 on video pads, 1 on image pads."""
    types = torch.zeros_like(input_ids)
    types[input_ids == video_token_id] = VIDEO_TYPE
    if image_token_id is not None:
        types[input_ids == image_token_id] = IMAGE_TYPE
    return types


def collate_generation_fields(
    rows: Sequence[PromptVideoInputs], video_token_id: int
) -> tuple[list[list[int]], dict[str, Any]]:
    """(prompt ids, multimodal fields) in the form `GRPOTrainer._generate_single_turn` consumes.

    Tensors are concatenated over rows (one batched `generate` call for all rows, the G copies of a prompt
    included); `mm_token_type_ids` is a per-row list that TRL left-pads like the prompt ids.
    """
    prompt_ids = [list(r.input_ids) for r in rows]
    fields: dict[str, Any] = dict(collate_video_fields(rows))
    if fields:
        fields["mm_token_type_ids"] = [
            [VIDEO_TYPE if t == video_token_id else TEXT_TYPE for t in ids] for ids in prompt_ids
        ]
    return prompt_ids, fields


def steering_sequence_bias(processor, text: str, bias: float, eos_token_id: int) -> list:
    """transformers `sequence_bias` entries that steer a completion towards `text` (then EOS).

    Each entry biases the next token of `text` only when everything before it in the completion matches,
    anchored on the last tokens of the generation prompt; with a moderate bias a random-weight model follows
    the text most of the time and sometimes leaves it (varied rewards). For smoke runs with random weights.
    """
    tok = processor.tokenizer
    probe = render_prompt(processor, [{"role": "user", "content": [{"type": "text", "text": "x"}]}])
    anchor = tok(probe, add_special_tokens=False)["input_ids"][-3:]
    target = list(tok(text, add_special_tokens=False)["input_ids"]) + [int(eos_token_id)]
    return [[anchor + target[: k + 1], float(bias)] for k in range(len(target))]
