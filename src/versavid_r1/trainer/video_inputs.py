"""Processor inputs for video prompts: token ids, `pixel_values_videos`, `video_grid_thw`, `second_per_grid_ts`.

The trainer decodes a prompt's video once (``versavid_r1.data.load_video``: proxy tasks applied, cached) and
runs the Qwen2(.5)-VL processor on the decoded frames here. The result of one prompt, `PromptVideoInputs`,
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
    """The decoded uint8 frames [T, 3, H, W] of each video, at the size the processor saw (for vLLM)."""
    fps: list[float] = field(default_factory=list)
    """The frame rate each video's time positions are computed from (`versavid_r1.data.config.time_fps`):
    the decoded clip's sampling fps under `time_encoding: absolute`, temporal_patch_size / 1 s under
    `reference`. A vLLM request must describe the video with this same rate to get the same
    `second_per_grid_ts`."""


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


def video_processor_kwargs(
    processor,
    clips: Sequence[Any],
    min_pixels: Optional[int] = None,
    max_pixels: Optional[int] = None,
    time_encoding: str = "absolute",
) -> dict:
    """`videos_kwargs` for the processor so that it uses the clips as decoded.

    - The loader already resized the frames (``VideoConfig`` frame/pixel limits, like qwen-vl-utils): when
      both sides are multiples of patch*merge (28) the processor must not resize again (its own
      min/max pixels would silently override the configured ones). Otherwise it resizes within the given
      pixel limits.
    - `video_metadata` carries the clip's frame rate for time (`time_fps`: the sampling fps under
      `absolute`, the rate giving 1.0 s per grid under `reference`), from which Qwen2.5-VL derives
      `second_per_grid_ts` (the temporal spacing of the 3D position ids); without it transformers assumes
      24 fps.
    - Frames are never re-sampled (`do_sample_frames=False`).
    """
    factor = _spatial_factor(processor)
    aligned = all(c.frames.shape[-2] % factor == 0 and c.frames.shape[-1] % factor == 0 for c in clips)
    kwargs: dict[str, Any] = {"do_sample_frames": False, "cap_pixels_per_frame": False}
    if aligned:
        kwargs["do_resize"] = False
    else:
        kwargs["do_resize"] = True
        if min_pixels is not None and max_pixels is not None:
            kwargs["size"] = {"shortest_edge": int(min_pixels), "longest_edge": int(max_pixels)}
    # transformers' VideoMetadata of an already-sampled clip: sampled_fps == the fps given here
    from versavid_r1.data.video import video_metadata

    rates = clip_time_fps(processor, clips, time_encoding)
    kwargs["video_metadata"] = [video_metadata(c, fps=r) for c, r in zip(clips, rates)]
    return kwargs


def clip_time_fps(processor, clips: Sequence[Any], time_encoding: str = "absolute") -> list[float]:
    """The frame rate each clip's time positions are computed from (see `PromptVideoInputs.fps`)."""
    from versavid_r1.data.config import time_fps

    patch = int(getattr(processor.video_processor, "temporal_patch_size", 2))
    return [time_fps(float(c.fps), time_encoding, patch) for c in clips]


def render_prompt(processor, messages: list[dict], chat_template_kwargs: Optional[dict] = None) -> str:
    """The prompt text (chat template, generation prompt added), one video placeholder per video part."""
    return processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, **(chat_template_kwargs or {})
    )


def build_prompt_inputs(
    processor,
    messages: list[dict],
    clips: Sequence[Any],
    min_pixels: Optional[int] = None,
    max_pixels: Optional[int] = None,
    chat_template_kwargs: Optional[dict] = None,
    time_encoding: str = "absolute",
) -> PromptVideoInputs:
    """Run the processor on one prompt and its decoded clips (`VideoClip`: frames uint8 [T,3,H,W], fps).

    `time_encoding` (`VideoConfig.time_encoding`): `absolute` or `reference` seconds per temporal grid."""
    text = render_prompt(processor, messages, chat_template_kwargs)
    n_placeholders = text.count(processor.video_token)
    if n_placeholders != len(clips):
        raise ValueError(
            f"the prompt has {n_placeholders} video placeholder(s) but {len(clips)} video(s) were loaded; "
            "every video part of the user turn needs exactly one decoded clip"
        )
    if not clips:
        ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
        return PromptVideoInputs(input_ids=list(ids))
    frames = [c.frames if isinstance(c.frames, torch.Tensor) else torch.as_tensor(c.frames) for c in clips]
    for f in frames:
        if f.dtype != torch.uint8 or f.ndim != 4 or f.shape[1] != 3:
            raise ValueError(f"video frames must be uint8 [T, 3, H, W], got {tuple(f.shape)} {f.dtype}")
    out = processor(
        text=[text],
        videos=frames,
        return_tensors="pt",
        videos_kwargs=video_processor_kwargs(processor, clips, min_pixels, max_pixels, time_encoding),
    )
    fields = {k: out[k] for k in VIDEO_FIELDS if k in out and out[k] is not None}
    if "second_per_grid_ts" in fields and not isinstance(fields["second_per_grid_ts"], torch.Tensor):
        fields["second_per_grid_ts"] = torch.tensor(fields["second_per_grid_ts"], dtype=torch.float32)
    return PromptVideoInputs(
        input_ids=out["input_ids"][0].tolist(),
        video_fields=fields,
        frames=frames,
        fps=clip_time_fps(processor, clips, time_encoding),
    )


def row_key(row: dict) -> str:
    """A stable key of a data row (rows are JSON-like dicts), to process each unique prompt once per batch."""
    return json.dumps(row, sort_keys=True, default=str)


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
