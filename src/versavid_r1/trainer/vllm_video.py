"""vLLM colocate mode with video: the request this project sends, and the hook that sends it.

TRL 1.16's `VLLMGeneration.generate` (colocate mode) builds ``{"prompt_token_ids": ids}`` requests and
attaches only images as multimodal data. For a video prompt vLLM needs
``multi_modal_data={"video": frames}`` next to the token ids, whose `<|video_pad|>` run is already expanded
(vLLM recognises an expanded placeholder run and does not expand it again, as it does for TRL's images).

Rather than copy TRL's colocate code, `video_requests` swaps `VLLMGeneration.llm` for a thin proxy while
one batch is generated: the proxy adds each row's video to the request TRL built, in the same order, and
forwards everything else to the real `vllm.LLM`. With tensor parallelism TRL gathers the prompts of the TP
group before calling `llm.generate`; the proxy gathers the videos of the group the same way.

vLLM cannot run on the project's CPU machines; `build_video_request` is unit-tested, the rest is small
on purpose. TRL's *server* mode cannot carry video at all (`VLLMClient.generate` sends token ids and image
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


def build_video_request(
    prompt_token_ids: Sequence[int],
    frames: Sequence[torch.Tensor],
    fps: Sequence[float],
) -> dict:
    """One vLLM request (a `TokensPrompt` dict) for a prompt with its decoded videos.

    - `multi_modal_data["video"]`: one array per video (a single array when there is one), frames exactly
      as the trainer's processor saw them, so vLLM computes the same `video_grid_thw` and the expanded
      `<|video_pad|>` run in `prompt_token_ids` matches.
    - `mm_processor_kwargs`: `fps` is the clip's sampling fps (Qwen2.5-VL's `second_per_grid_ts` =
      temporal_patch_size / fps); `do_resize=False` and `do_sample_frames=False` keep vLLM's HF processor
      from resizing or re-sampling frames the loader already prepared.
    """
    request: dict[str, Any] = {"prompt_token_ids": list(prompt_token_ids)}
    if not frames:
        return request
    if len(frames) != len(fps):
        raise ValueError(f"{len(frames)} videos but {len(fps)} fps values")
    arrays = [frames_for_vllm(f) for f in frames]
    request["multi_modal_data"] = {"video": arrays[0] if len(arrays) == 1 else arrays}
    fps_value: Any = float(fps[0]) if len(set(fps)) == 1 else [float(x) for x in fps]
    request["mm_processor_kwargs"] = {"fps": fps_value, "do_resize": False, "do_sample_frames": False}
    return request


def add_videos_to_requests(requests: list[dict], videos: Sequence[Optional[tuple]]) -> list[dict]:
    """Attach `videos[i]` = (frames list, fps list) or None to TRL's `requests[i]` (same order, same length)."""
    if len(requests) != len(videos):
        raise ValueError(f"{len(requests)} vLLM requests but {len(videos)} video entries")
    out = []
    for request, video in zip(requests, videos):
        if video is None or not video[0]:
            out.append(request)
            continue
        if "multi_modal_data" in request:
            raise ValueError("a prompt with both images and videos is not supported with vLLM")
        frames, fps = video
        out.append({**request, **build_video_request(request["prompt_token_ids"], frames, fps)})
    return out


class _VideoLLMProxy:
    """Stands in for `vllm.LLM` during one `VLLMGeneration.generate` call; adds the videos to its requests."""

    def __init__(self, llm, videos: list, tp_group=None, tp_size: int = 1):
        self._llm = llm
        self._videos = videos
        self._tp_group = tp_group
        self._tp_size = tp_size

    def generate(self, prompts, *args, **kwargs):
        videos = self._videos
        if self._tp_size > 1:
            # TRL all-gathered the prompts of the TP group (rank order); gather the videos the same way.
            gathered = [None] * self._tp_size
            torch.distributed.all_gather_object(gathered, videos, group=self._tp_group)
            videos = [v for part in gathered for v in part]
        return self._llm.generate(add_videos_to_requests(list(prompts), videos), *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._llm, name)


@contextlib.contextmanager
def video_requests(vllm_generation, videos: list):
    """While active, `vllm_generation.generate(...)` sends `videos[i]` with prompt i (colocate mode)."""
    if getattr(vllm_generation, "mode", "colocate") != "colocate":
        raise ValueError(SERVER_MODE_MESSAGE)
    llm = vllm_generation.llm
    vllm_generation.llm = _VideoLLMProxy(
        llm,
        videos,
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
