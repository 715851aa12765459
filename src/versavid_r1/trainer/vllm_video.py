"""vLLM colocate mode with video: the request this project sends, the engine it is sent to, and the hook.

TRL 1.16's `VLLMGeneration.generate` (colocate mode) builds ``{"prompt_token_ids": ids}`` requests and
attaches only images as multimodal data. For a video prompt vLLM 0.31 needs the video as a
``(frames, metadata)`` item and the prompt as the chat template renders it, ONE
`<|vision_start|><|video_pad|><|vision_end|>` per video: it expands each video itself (the pad run of Qwen2(.5)-VL;
the per-frame-group `<t seconds><|vision_start|>...<|vision_end|>` of Qwen3-VL / Qwen3.5) and does not recognise an
already expanded one (`build_video_request`; facts: docs/stack.md, "vLLM 0.31 and video prompts"). Evaluation's
`--backend vllm` sends the same request.

Rather than copy TRL's colocate code, `video_requests` swaps `VLLMGeneration.llm` for a thin proxy while
one batch is generated: the proxy replaces each request TRL built by its row's video request, in the same order,
and forwards everything else to the real `vllm.LLM`. With tensor parallelism TRL gathers the prompts of the TP
group before calling `llm.generate`; the proxy gathers the videos of the group the same way.

The engine TRL builds is sized for one bounded video per prompt (`trainer_engine_context` wraps the
`vllm.LLM` constructor TRL calls). `build_video_request` is tested against vLLM's processing
(tests/test_vllm_video.py); generation itself needs a GPU. TRL's *server* mode cannot carry video at all (`VLLMClient.generate` sends token ids and image
features only), so the trainer refuses `vllm_mode="server"` at start.
"""
from __future__ import annotations

import contextlib
from typing import Any, Optional, Sequence

import numpy as np
import torch

SERVER_MODE_MESSAGE = (
    "use_vllm with vllm_mode='server' cannot carry video: TRL's vLLM server client (trl vllm-serve) only "
    "sends token ids and image features, so the policy would generate without seeing the video. Use "
    "vllm_mode='colocate' (vLLM inside each training process; the video is passed as multimodal data) or "
    "use_vllm=false (transformers generate)."
)


def frames_for_vllm(frames: torch.Tensor) -> np.ndarray:
    """uint8 [T, 3, H, W] tensor -> uint8 [T, H, W, 3] array, vLLM's video item layout."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected frames [T, 3, H, W], got {tuple(frames.shape)}")
    return np.ascontiguousarray(frames.detach().cpu().permute(0, 2, 3, 1).numpy().astype(np.uint8, copy=False))


def collapse_video_runs(prompt_token_ids: Sequence[int], video_token_id: int) -> list[int]:
    """The prompt with each run of `<|video_pad|>` cut to one token (Qwen2(.5)-VL's expanded ids -> the template's).

    vLLM 0.31's multimodal processor always replaces the FIRST placeholder token of each video with the
    video's full run (`_apply_token_matches_with_placeholders`); it does not recognise a run that is already
    expanded, so the trainer's expanded ids would come out with 2N-1 pads (measured).
    """
    out: list[int] = []
    for tid in prompt_token_ids:
        tid = int(tid)
        if tid == video_token_id and out and out[-1] == video_token_id:
            continue
        out.append(tid)
    return out


def wrap_video_placeholders(prompt_token_ids: Sequence[int], video_token_id: int) -> list[int]:
    """Each `<|vision_start|><|video_pad|><|vision_end|>` doubled to `<vs><vs><pad><ve><ve>`.

    transformers >= 5.10 expands only the `<|video_pad|>` of a Qwen3-VL / Qwen3.5 video, so the template's outer
    `<|vision_start|>`/`<|vision_end|>` stay around the frame groups. A vLLM whose Qwen3-VL processor replaces the
    whole three-token placeholder (before vLLM PR #41359) would drop that pair; given the placeholder inside a
    second pair, it replaces the inner one and the result is transformers' ids again.
    """
    ids = [int(t) for t in prompt_token_ids]
    out: list[int] = []
    for k, tid in enumerate(ids):
        if tid == video_token_id:
            if not 0 < k < len(ids) - 1:
                raise ValueError("a video placeholder must sit between <|vision_start|> and <|vision_end|>")
            out.append(ids[k - 1])
            out.append(tid)
            out.append(ids[k + 1])
        else:
            out.append(tid)
    return out


def vllm_replaces_whole_video_placeholder(processor) -> bool:
    """True when the installed vLLM's Qwen3-VL processor replaces the whole `<|vision_start|><|video_pad|>
    <|vision_end|>` of a video (before vLLM PR #41359, which replaces only `<|video_pad|>` when transformers keeps
    the outer pair). False for Qwen2(.5)-VL (vLLM replaces the pad token), without vLLM, and for a vLLM that asks
    the processor (`Qwen3VLMultiModalProcessor._expands_only_video_token`)."""
    from versavid_r1.families import uses_text_timestamps

    if not uses_text_timestamps(processor):
        return False
    try:
        from vllm.model_executor.models.qwen3_vl import Qwen3VLMultiModalProcessor
    except ImportError:
        return False
    check = getattr(Qwen3VLMultiModalProcessor, "_expands_only_video_token", None)
    return not (callable(check) and bool(check(processor)))


def build_video_request(
    placeholder_ids: Sequence[int],
    frames: Sequence[torch.Tensor],
    metadata: Sequence[dict],
    *,
    video_token_id: int,
    wrap_placeholders: bool = False,
) -> dict:
    """One vLLM 0.31 request (a `TokensPrompt` dict) for a prompt with its videos, as the trainer processed them.

    - `prompt_token_ids`: the prompt as the chat template renders it, one `<|vision_start|><|video_pad|>
      <|vision_end|>` per video (`PromptVideoInputs.placeholder_ids`); vLLM expands each video from the grid (and,
      Qwen3-VL / Qwen3.5, the timestamps) it computes, giving exactly the trainer's ids. `wrap_placeholders`:
      `wrap_video_placeholders`, for a vLLM that replaces a whole Qwen3-VL placeholder.
    - `multi_modal_data["video"]`: per video a `(frames [T, H, W, 3] uint8, metadata)` tuple, the form vLLM's
      Qwen VL processors require (`video_needs_metadata`; a bare array is refused since vLLM PR #47736). The frames
      are exactly those the trainer's processor saw (aligned); the metadata is the one the trainer gave transformers
      (`PromptVideoInputs.video_metadata`), so vLLM's call of the same HF processor computes the same grid,
      `second_per_grid_ts` (Qwen2.5-VL) and timestamps (Qwen3-VL / Qwen3.5, from `frames_indices` / `fps`).
    - `mm_processor_kwargs`: `do_resize=False` and `do_sample_frames=False`, as in the trainer's call (vLLM
      drops the metadata's own `do_sample_frames` before calling transformers; without `do_resize=False` it
      would re-fit the frames into the processor's default pixel range).
    """
    ids = [int(t) for t in placeholder_ids]
    if not frames:
        return {"prompt_token_ids": ids}
    if len(frames) != len(metadata):
        raise ValueError(f"{len(frames)} videos but {len(metadata)} video metadata entries")
    if ids.count(video_token_id) != len(frames) or collapse_video_runs(ids, video_token_id) != ids:
        raise ValueError(f"the prompt has {ids.count(video_token_id)} video placeholder token(s) for "
                         f"{len(frames)} video(s); vLLM needs one unexpanded placeholder per video")
    if wrap_placeholders:
        ids = wrap_video_placeholders(ids, video_token_id)
    items = [(frames_for_vllm(f), {**m, "do_sample_frames": False}) for f, m in zip(frames, metadata)]
    return {
        "prompt_token_ids": ids,
        "multi_modal_data": {"video": items[0] if len(items) == 1 else items},
        "mm_processor_kwargs": {"do_resize": False, "do_sample_frames": False},
    }


def video_request(inputs: Any, processor) -> dict:
    """`build_video_request` of one `PromptVideoInputs` for the installed vLLM (offline `LLM.generate`, evaluation)."""
    return build_video_request(inputs.placeholder_ids, inputs.frames, inputs.video_metadata,
                               video_token_id=int(processor.video_token_id),
                               wrap_placeholders=vllm_replaces_whole_video_placeholder(processor))


def add_videos_to_requests(
    requests: list[dict], videos: Sequence[Optional[Any]], *, video_token_id: int, wrap_placeholders: bool = False
) -> list[dict]:
    """Replace TRL's `requests[i]` by the video request of `videos[i]` (a `PromptVideoInputs`, or None for a row
    without video; same order). TRL built request i from the row's expanded ids: they must be `videos[i]`'s."""
    if len(requests) != len(videos):
        raise ValueError(f"{len(requests)} vLLM requests but {len(videos)} video entries")
    out = []
    for i, (request, video) in enumerate(zip(requests, videos)):
        if video is None or not video.frames:
            out.append(request)
            continue
        if "multi_modal_data" in request:
            raise ValueError("a prompt with both images and videos is not supported with vLLM")
        if [int(t) for t in request["prompt_token_ids"]] != list(video.input_ids):
            raise ValueError(f"vLLM request {i} does not hold the prompt of its row (rows and requests out of order)")
        out.append({**request, **build_video_request(
            video.placeholder_ids, video.frames, video.video_metadata,
            video_token_id=video_token_id, wrap_placeholders=wrap_placeholders,
        )})
    return out


def max_video_tokens(max_frames: int, max_pixels: int, spatial_factor: int = 28, temporal_patch: int = 2) -> int:
    """Most prompt tokens one video can take: ceil(frames / temporal_patch) grids of max_pixels // factor^2 tokens."""
    return -(-int(max_frames) // int(temporal_patch)) * (int(max_pixels) // (int(spatial_factor) ** 2))


def video_engine_kwargs(
    max_frames: int,
    min_pixels: int,
    max_pixels: int,
    max_num_batched_tokens: Optional[int] = None,
    max_model_len: Optional[int] = None,
    spatial_factor: int = 28,
    text_timestamps: bool = False,
) -> dict:
    """`vllm.LLM` arguments that size the engine for this project's prompts: one video, bounded pixels.

    Without them vLLM 0.31 budgets (and profiles memory for) the worst video its processor allows: images
    too, and a 14-frame video at the processor's default max of 16,384 tokens per 2-frame grid, 114,688
    tokens when the context allows it. With them: `limit_mm_per_prompt` one video and no image;
    `mm_processor_kwargs` the pixel bounds (vLLM's largest video becomes 14 frames of `max_pixels`; our
    requests pass `do_resize=False`, so the frames keep the trainer's size); and an encoder budget
    (`max_num_batched_tokens`, at least the given value) that holds a video of `max_frames` frames (no more
    than the context `max_model_len` can hold), else vLLM refuses it ("exceeds the pre-allocated encoder
    cache size"). Qwen3-VL / Qwen3.5 (`text_timestamps`, patch 16: `spatial_factor` 32): their video processor
    bounds the pixels of a whole video (`size`: frames x height x width), so the bounds are given that way.
    """
    need = max_video_tokens(max_frames, max_pixels, spatial_factor)
    if max_model_len:
        need = min(need, int(max_model_len))
    if text_timestamps:
        pixels = {"size": {"shortest_edge": int(min_pixels), "longest_edge": int(max_pixels) * int(max_frames)}}
    else:
        pixels = {"min_pixels": int(min_pixels), "max_pixels": int(max_pixels)}
    return {
        "limit_mm_per_prompt": {"image": 0, "video": 1},
        "mm_processor_kwargs": pixels,
        "max_num_batched_tokens": max(int(max_num_batched_tokens or 0), need),
    }


def video_config_engine_kwargs(
    video_config, max_num_batched_tokens: Optional[int] = None, max_model_len: Optional[int] = None, processor=None
) -> dict:
    """`video_engine_kwargs` for a `versavid_r1.data.VideoConfig`: its frame count (`nframes`, or `max_frames`
    when sampling by fps) and pixel bounds, for the family of `processor` (default: Qwen2.5-VL's)."""
    frames = video_config.max_frames if video_config.fps is not None else video_config.nframes
    family = {}
    if processor is not None:
        from versavid_r1.families import uses_text_timestamps

        vp = processor.video_processor
        family = {"spatial_factor": int(vp.patch_size) * int(vp.merge_size),
                  "text_timestamps": uses_text_timestamps(processor)}
    return video_engine_kwargs(frames, video_config.min_pixels, video_config.max_pixels, max_num_batched_tokens,
                               max_model_len, **family)


@contextlib.contextmanager
def colocated_engine_kwargs(video: dict, max_model_len: Optional[int] = None):
    """While active, TRL's colocate `VLLMGeneration` builds its `vllm.LLM` with `video` engine arguments added.

    TRL 1.16 passes a fixed set of arguments to `vllm.LLM` (`VLLMGeneration._init_vllm`; GRPOConfig has no
    field for `limit_mm_per_prompt` or `mm_processor_kwargs`), so the constructor TRL calls is wrapped, not
    copied: TRL's own `max_num_batched_tokens` (4096) is kept unless a video needs more, and
    `max_model_len` (GRPOConfig `vllm_max_model_length`) falls back to `max_model_len` when unset (TRL would
    leave the model's 128k context).
    """
    import trl.generation.vllm_generation as trl_vllm

    original = getattr(trl_vllm, "LLM", None)
    if original is None:  # vLLM not installed: TRL raises its own ImportError before building an engine
        yield
        return

    def build(*args, **kwargs):
        extra = dict(video)
        extra["max_num_batched_tokens"] = max(int(kwargs.get("max_num_batched_tokens") or 0),
                                              int(extra.get("max_num_batched_tokens") or 0))
        if kwargs.get("max_model_len") is None and max_model_len:
            extra["max_model_len"] = int(max_model_len)
        return original(*args, **{**kwargs, **extra})

    trl_vllm.LLM = build
    try:
        yield
    finally:
        trl_vllm.LLM = original


def trainer_engine_context(args, video_config, max_prompt_length: Optional[int], processor=None):
    """`colocated_engine_kwargs` for a training run (a no-op unless `use_vllm` in colocate mode): one video of
    the video config's frames (`nframes`, or `max_frames` when sampling by fps) and pixel bounds, context
    `max_prompt_length + max_completion_length` unless `vllm_max_model_length` is set."""
    if args is None or not args.use_vllm or args.vllm_mode != "colocate":
        return contextlib.nullcontext()
    context = max_prompt_length + int(args.max_completion_length) if max_prompt_length else None
    if video_config is None:  # custom loader and prompt builder: only the item limits are known
        video = {"limit_mm_per_prompt": {"image": 0, "video": 1}}
    else:
        video = video_config_engine_kwargs(video_config, max_model_len=args.vllm_max_model_length or context,
                                           processor=processor)
    return colocated_engine_kwargs(video, max_model_len=context)


class _VideoLLMProxy:
    """Stands in for `vllm.LLM` during one `VLLMGeneration.generate` call; puts the videos in its requests."""

    def __init__(self, llm, videos: list, request_kwargs: dict, tp_group=None, tp_size: int = 1):
        self._llm = llm
        self._videos = videos
        self._request_kwargs = request_kwargs
        self._tp_group = tp_group
        self._tp_size = tp_size

    def generate(self, prompts, *args, **kwargs):
        videos = self._videos
        if self._tp_size > 1:
            # TRL all-gathered the prompts of the TP group (rank order); gather the videos the same way.
            gathered = [None] * self._tp_size
            torch.distributed.all_gather_object(gathered, videos, group=self._tp_group)
            videos = [v for part in gathered for v in part]
        requests = add_videos_to_requests(list(prompts), videos, **self._request_kwargs)
        return self._llm.generate(requests, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._llm, name)


def request_rows(rows: Sequence[Any]) -> list:
    """What the proxy needs of each row (`PromptVideoInputs` without the processor's pixel tensors, which a TP group
    would otherwise pickle to every rank), or None for a row without video."""
    import dataclasses

    return [dataclasses.replace(r, video_fields={}) if r is not None and r.frames else None for r in rows]


@contextlib.contextmanager
def video_requests(vllm_generation, rows: Sequence[Any], *, video_token_id: int, wrap_placeholders: bool = False):
    """While active, `vllm_generation.generate(...)` sends row i's video request (`rows[i]`: `PromptVideoInputs`,
    or None for a row without video) in place of prompt i (colocate mode)."""
    if getattr(vllm_generation, "mode", "colocate") != "colocate":
        raise ValueError(SERVER_MODE_MESSAGE)
    llm = vllm_generation.llm
    vllm_generation.llm = _VideoLLMProxy(
        llm,
        request_rows(rows),
        {"video_token_id": int(video_token_id), "wrap_placeholders": bool(wrap_placeholders)},
        tp_group=getattr(vllm_generation, "tp_group", None),
        tp_size=int(getattr(vllm_generation, "tensor_parallel_size", 1) or 1),
    )
    try:
        yield
    finally:
        vllm_generation.llm = llm


def suppress_with_logit_bias(generation_kwargs: Optional[dict], token_ids: Sequence[int]) -> dict:
    """vLLM `SamplingParams` kwargs that never sample `token_ids` (bias -100, vLLM's floor)."""
    kwargs = dict(generation_kwargs or {})
    bias = {int(k): float(v) for k, v in (kwargs.get("logit_bias") or {}).items()}
    for tid in token_ids:
        bias[int(tid)] = -100.0
    kwargs["logit_bias"] = bias
    return kwargs
