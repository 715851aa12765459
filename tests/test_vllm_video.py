"""The vLLM video request (`versavid_r1.trainer.vllm_video`) against what vLLM 0.31 does with it.

Oracle: `hf_processor_as_vllm` replays, with transformers' own Qwen2.5-VL processor, the steps of vLLM 0.31's
`Qwen2_5_VLMultiModalProcessor` (vllm/model_executor/models/qwen2_5_vl.py, multimodal/parse.py and
processing/processor.py of the 0.31.0 wheel): a video item must be a `(frames, metadata)` pair (a bare array is
refused), `do_sample_frames` is dropped from the metadata, the rest becomes transformers' `VideoMetadata`, the
HF processor is called on the videos alone with the engine's `mm_processor_kwargs` overlaid by the request's,
and EACH placeholder token of the prompt that matches a video is replaced by that video's
`grid.prod() // merge**2` pads (an already-expanded run is not recognised: its first token is expanded again).
The trainer's own inputs (real mp4s through `load_video` and `build_prompt_inputs`, 16 frames of 4 s and of
60 s) must come out identical: token ids, grid and `second_per_grid_ts`. The oracle also replays vLLM's Qwen3-VL
processor (timestamps computed by vLLM from the metadata; used by tests/test_families.py for Qwen3-VL,
Qwen3-VL-MoE and Qwen3.5).

With vLLM installed (`bash scripts/install.sh --gpu`, or a separate venv: about 8.4 GB and 17 minutes to
install on a 2-core machine), the last test runs vLLM's own multimodal processor on the same requests; it
needs no GPU.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from versavid_r1.data import VideoConfig, load_video, make_conversation
from versavid_r1.data.video import VideoClip
from versavid_r1.trainer.video_inputs import build_prompt_inputs
from versavid_r1.trainer.vllm_video import (
    build_video_request,
    collapse_video_runs,
    max_video_tokens,
    video_config_engine_kwargs,
)
from versavid_r1.video_writer import write_mp4

PAPER_PIXELS = dict(min_pixels=128 * 28 * 28, max_pixels=196 * 28 * 28)


# --- the oracle -------------------------------------------------------------------------------------------
def hf_processor_as_vllm(processor, request: dict, engine_mm_kwargs: dict | None = None,
                         vllm_target: str = "pad") -> dict:
    """What vLLM 0.31 makes of `request`: its expanded prompt ids and the HF processor's output.

    Qwen2.5-VL: the HF processor on the videos alone, each placeholder token replaced by its video's pad run.
    Qwen3-VL / Qwen3.5 (vllm/model_executor/models/qwen3_vl.py): the HF processor per video on the prompt
    "<|vision_start|><|video_pad|><|vision_end|>" for grid and pixels; the timestamps computed by vLLM itself from
    the metadata (`_get_video_second_idx` with do_sample_frames false: frames_indices / fps, averaged per merge_size
    frames); each frame group `encode("<t seconds>") + <|vision_start|> + pads + <|vision_end|>`, replacing either the
    bare `<|video_pad|>` (`vllm_target="pad"`: vLLM with PR #41359, transformers >= 5.10) or the whole
    three-token placeholder (`"placeholder"`: vLLM before it).
    """
    from transformers.video_utils import VideoMetadata

    from versavid_r1.families import uses_text_timestamps

    videos = request["multi_modal_data"]["video"]
    items = [videos] if isinstance(videos, tuple) and len(videos) == 2 else list(videos)
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], dict)):
            raise ValueError("Video metadata is required but not found in mm input")  # vLLM's parser
    kwargs = {**(engine_mm_kwargs or {}), **request.get("mm_processor_kwargs", {})}
    metas = [VideoMetadata(**{k: v for k, v in meta.items() if k != "do_sample_frames"}) for _, meta in items]
    pad, merge = processor.video_token_id, processor.video_processor.merge_size
    if not uses_text_timestamps(processor):
        out = processor(videos=[frames for frames, _ in items], video_metadata=metas, return_tensors="pt", **kwargs)
        runs = [[pad] * (int(g.prod()) // merge ** 2) for g in out["video_grid_thw"]]
        return {"prompt_token_ids": _replace_each(request["prompt_token_ids"], [pad], runs),
                "video_grid_thw": out["video_grid_thw"],
                "second_per_grid_ts": torch.as_tensor(out["second_per_grid_ts"], dtype=torch.float32)}
    start, end = processor.vision_start_token_id, processor.vision_end_token_id
    grids, runs, stamps = [], [], []
    for (frames, meta), md in zip(items, metas):
        out = processor(text="<|vision_start|><|video_pad|><|vision_end|>", videos=[[frames]], video_metadata=[[md]],
                        return_tensors="pt", **kwargs)
        grid = out["video_grid_thw"][0]
        indices = list(meta["frames_indices"])
        indices += indices[-1:] * (-len(indices) % merge)
        seconds = [idx / meta["fps"] for idx in indices]
        times = [(seconds[i] + seconds[i + merge - 1]) / 2 for i in range(0, len(seconds), merge)]
        assert len(times) == int(grid[0]), "vLLM asserts one timestamp per frame group"
        per_frame = int(grid[1:].prod()) // merge ** 2
        run = []
        for t in times:
            run += processor.tokenizer.encode(f"<{t:.1f} seconds>", add_special_tokens=False)
            run += [start] + [pad] * per_frame + [end]
        grids.append(grid)
        runs.append(run)
        stamps.append(times)
    target = [pad] if vllm_target == "pad" else [start, pad, end]
    return {"prompt_token_ids": _replace_each(request["prompt_token_ids"], target, runs),
            "video_grid_thw": torch.stack(grids), "timestamps": stamps}


def _replace_each(ids: list[int], target: list[int], replacements: list[list[int]]) -> list[int]:
    """Each occurrence of `target`, in order, replaced by the next replacement (vLLM's prompt update; an already
    expanded run is not recognised: its first token matches again)."""
    out, k, todo = [], 0, iter(replacements)
    while k < len(ids):
        if ids[k:k + len(target)] == target:
            nxt = next(todo, None)
            if nxt is not None:
                out += nxt
                k += len(target)
                continue
        out.append(ids[k])
        k += 1
    return out


def request_for(processor, inputs, wrap: bool = False) -> dict:
    return build_video_request(inputs.placeholder_ids, inputs.frames, inputs.video_metadata,
                               video_token_id=processor.video_token_id, wrap_placeholders=wrap)


# --- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def processor(tiny_dirs):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_dirs["qwen2_5_vl"])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """16-frame clips of real mp4s, as the trainer loads them: 4 s (8 fps) and 60 s (2 fps) sources."""
    root = tmp_path_factory.mktemp("vllm-clips")
    cfg = VideoConfig(nframes=16, cache_size=0, **PAPER_PIXELS)
    out = {}
    for name, seconds, fps in (("short", 4, 8), ("minute", 60, 2)):
        n = seconds * fps
        frames = (np.arange(n, dtype=np.uint8)[:, None, None, None] * 7 + np.zeros((1, 96, 128, 3), np.uint8))
        write_mp4(root / f"{name}.mp4", frames, fps=fps)
        row = {"problem": "What happens?", "solution": "<answer>x</answer>", "problem_type": "caption",
               "video": str(root / f"{name}.mp4")}
        out[name] = (row, load_video(row, cfg), cfg)
    return out


# --- the request vs the trainer's inputs --------------------------------------------------------------------
@pytest.mark.parametrize("name,seconds", [("short", 4.0), ("minute", 60.0)])
def test_vllm_sees_the_trainers_grid_time_and_tokens(processor, clips, name, seconds):
    row, clip, cfg = clips[name]
    assert clip.num_frames == 16 and clip.duration == pytest.approx(seconds, rel=0.1)
    inputs = build_prompt_inputs(processor, make_conversation(row, cfg), [clip], **PAPER_PIXELS)
    request = request_for(processor, inputs)
    seen = hf_processor_as_vllm(processor, request, video_config_engine_kwargs(cfg)["mm_processor_kwargs"])
    assert seen["prompt_token_ids"] == inputs.input_ids
    assert torch.equal(seen["video_grid_thw"], inputs.video_fields["video_grid_thw"])
    assert torch.equal(seen["second_per_grid_ts"], inputs.video_fields["second_per_grid_ts"])
    assert inputs.video_fields["second_per_grid_ts"].item() == pytest.approx(2 / clip.fps)  # real seconds
    # the frames vLLM gets are the ones the trainer's processor saw
    frames, meta = request["multi_modal_data"]["video"]
    assert np.array_equal(frames, inputs.frames[0].permute(0, 2, 3, 1).numpy())
    assert meta["do_sample_frames"] is False


def test_a_caller_given_time_encoding_reaches_vllm(processor, clips):
    """A caller that encodes time differently (e.g. 1.0 s per grid whatever the clip) gets the same in vLLM."""
    row, clip, cfg = clips["minute"]
    inputs = build_prompt_inputs(processor, make_conversation(row, cfg), [clip], second_per_grid_ts=[1.0])
    assert inputs.video_fields["second_per_grid_ts"].tolist() == [1.0]
    seen = hf_processor_as_vllm(processor, request_for(processor, inputs))
    assert seen["second_per_grid_ts"].tolist() == [1.0] and seen["prompt_token_ids"] == inputs.input_ids


def test_the_old_request_forms_fail_the_oracle(processor, clips):
    """Why the request is built this way: the expanded prompt or a bare frame array goes wrong in vLLM 0.31."""
    row, clip, cfg = clips["short"]
    inputs = build_prompt_inputs(processor, make_conversation(row, cfg), [clip])
    request = request_for(processor, inputs)
    expanded = {**request, "prompt_token_ids": inputs.input_ids}
    n = inputs.input_ids.count(processor.video_token_id)
    assert hf_processor_as_vllm(processor, expanded)["prompt_token_ids"].count(processor.video_token_id) == 2 * n - 1
    bare = {**request, "multi_modal_data": {"video": request["multi_modal_data"]["video"][0]}}
    with pytest.raises(ValueError, match="metadata is required"):
        hf_processor_as_vllm(processor, bare)
    assert collapse_video_runs([1, 9, 9, 9, 2, 9, 3], 9) == [1, 9, 2, 9, 3]


def test_unaligned_custom_loader_frames_are_resized_once_for_both_paths(processor):
    """Frames that are not multiples of 28 (a custom video_loader) are resized to the processor's target before
    the HF call, and vLLM gets those same frames."""
    raw = torch.randint(0, 255, (16, 3, 100, 150), dtype=torch.uint8)
    clip = VideoClip(frames=raw, timestamps=[], sources=[], fps=4.0)
    messages = [{"role": "user", "content": [{"type": "video", "video": "custom"}, {"type": "text", "text": "?"}]}]
    inputs = build_prompt_inputs(processor, messages, [clip], **PAPER_PIXELS)
    aligned = inputs.frames[0]
    assert aligned.dtype == torch.uint8 and aligned.shape[-2] % 28 == 0 and aligned.shape[-1] % 28 == 0
    # the target is the one transformers' own resize picks for these frames and pixel bounds
    own = processor(text=["<|vision_start|><|video_pad|><|vision_end|>"], videos=[raw], return_tensors="pt",
                    do_sample_frames=False, do_resize=True,
                    size={"shortest_edge": PAPER_PIXELS["min_pixels"], "longest_edge": PAPER_PIXELS["max_pixels"]})
    assert torch.equal(own["video_grid_thw"], inputs.video_fields["video_grid_thw"])
    request = request_for(processor, inputs)
    assert np.array_equal(request["multi_modal_data"]["video"][0], aligned.permute(0, 2, 3, 1).numpy())
    seen = hf_processor_as_vllm(processor, request)
    assert seen["prompt_token_ids"] == inputs.input_ids
    assert torch.equal(seen["video_grid_thw"], inputs.video_fields["video_grid_thw"])


def test_engine_bounds_fit_one_video_of_the_configured_size():
    paper = VideoConfig(nframes=16, **PAPER_PIXELS)
    kw = video_config_engine_kwargs(paper)
    assert kw["limit_mm_per_prompt"] == {"image": 0, "video": 1}
    assert kw["mm_processor_kwargs"] == {"min_pixels": 100352, "max_pixels": 153664}
    assert max_video_tokens(16, 153664) == 8 * 196 == kw["max_num_batched_tokens"]
    qa = video_config_engine_kwargs(VideoConfig(fps=1.0, max_frames=128, **PAPER_PIXELS), max_num_batched_tokens=8192)
    assert qa["max_num_batched_tokens"] == 64 * 196  # a 128-frame QA video fits vLLM's encoder budget
    loose = VideoConfig(fps=2.0, max_frames=768, **PAPER_PIXELS)  # 384 grids: bounded by the context instead
    assert video_config_engine_kwargs(loose, max_num_batched_tokens=4096, max_model_len=10240)[
        "max_num_batched_tokens"] == 10240


def test_trls_colocated_engine_is_built_with_the_video_bounds(tiny_dirs, demo_rows, video_cfg, tmp_path,
                                                              monkeypatch):
    """TRL's own `VLLMGeneration._init_vllm` runs; the `vllm.LLM` it calls records its arguments (no GPU here)."""
    import trl.generation.vllm_generation as trl_vllm
    from test_trainer import make_trainer

    built = {}

    class RecordingLLM:  # where vllm.LLM would start an engine
        def __init__(self, **kwargs):
            built.update(kwargs)

    monkeypatch.setattr(trl_vllm, "is_vllm_available", lambda: True)
    monkeypatch.setattr(trl_vllm, "LLM", RecordingLLM, raising=False)
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], demo_rows[:2], video_cfg, tmp_path, use_vllm=True,
                           vllm_mode="colocate", max_completion_length=16, max_prompt_length=500)
    assert built["limit_mm_per_prompt"] == {"image": 0, "video": 1}
    assert built["mm_processor_kwargs"] == {"min_pixels": video_cfg.min_pixels, "max_pixels": video_cfg.max_pixels}
    assert built["max_num_batched_tokens"] == 4096  # TRL's value, above this video's need
    assert built["max_model_len"] == 500 + 16  # vllm_max_model_length unset: prompt + completion, not 128k
    assert built["model"] == tiny_dirs["qwen2_5_vl"]
    assert trl_vllm.LLM is RecordingLLM, "TRL's constructor is restored after the trainer is built"
    assert isinstance(trainer.vllm_generation.llm, RecordingLLM)


# --- vLLM itself (CPU is enough for its input processing) -----------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (GPU extra)")
def test_vllms_own_processor_agrees(processor, clips, tiny_dirs):
    from vllm.config import ModelConfig
    from vllm.multimodal import MULTIMODAL_REGISTRY

    row, clip, cfg = clips["short"]
    engine = video_config_engine_kwargs(cfg)
    model = str(Path(tiny_dirs["qwen2_5_vl"]))
    bounded = MULTIMODAL_REGISTRY.create_processor(ModelConfig(
        model=model, tokenizer=model, dtype="float32", max_model_len=10240,
        limit_mm_per_prompt=engine["limit_mm_per_prompt"], mm_processor_kwargs=engine["mm_processor_kwargs"]))
    # vLLM budgets one video of at most 14 frames at the configured pixels: within our encoder budget
    budget = bounded.info.get_mm_max_tokens_per_item(seq_len=10240, mm_counts={"video": 1})["video"]
    assert budget == 7 * 196 <= engine["max_num_batched_tokens"]
    for name in ("short", "minute"):
        row, clip, cfg = clips[name]
        inputs = build_prompt_inputs(processor, make_conversation(row, cfg), [clip], **PAPER_PIXELS)
        request = request_for(processor, inputs)
        out = bounded(request["prompt_token_ids"], bounded.info.parse_mm_data(request["multi_modal_data"]),
                      hf_processor_mm_kwargs=request["mm_processor_kwargs"])
        item = out["mm_kwargs"]["video"][0]
        assert out["prompt_token_ids"] == inputs.input_ids
        assert torch.equal(item["video_grid_thw"].data, inputs.video_fields["video_grid_thw"][0])
        assert item["second_per_grid_ts"].data.item() == inputs.video_fields["second_per_grid_ts"].item()
    with pytest.raises(ValueError, match="metadata is required"):
        bounded.info.parse_mm_data({"video": request["multi_modal_data"]["video"][0]})
