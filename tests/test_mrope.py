"""Qwen2.5-VL video time positions (M-RoPE) through the project's own prompt path.

Real mp4s of 16 sampled frames spanning about 1.3, 5, 7.9, 12 and 60 s go through `load_video` ->
`build_prompt_inputs` -> the tiny Qwen2.5-VL's forward; the temporal position ids the forward hands the
language model are compared with Qwen's formula computed here from the videos' real durations:
grid i of a video starting at position p sits at `p + floor(i * second_per_grid * tokens_per_second)`,
`second_per_grid = temporal_patch_size * duration / 16`, and the text after the video resumes one past
the largest position used. transformers 5.17 alone truncates `second_per_grid` to an integer first
(every grid of a clip under 8 s at one position) and starts the following text too early: these tests
fail without `versavid_r1.compat.mrope`.
"""
from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch

from versavid_r1.compat import mrope
from versavid_r1.data import VideoConfig, load_video, make_conversation
from versavid_r1.trainer.video_inputs import build_prompt_inputs
from versavid_r1.video_writer import write_mp4

# approximate seconds -> (source frames, source fps): 16 frames sampled uniformly over the whole video
CLIPS = {1.3: (26, 20), 5: (40, 8), 7.9: (79, 10), 12: (48, 4), 60: (60, 1)}
NFRAMES = 16


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mrope-videos")
    out = {}
    for seconds, (n, fps) in CLIPS.items():
        ramp = np.linspace(0, 255, n, dtype=np.uint8)[:, None, None, None]
        frames = np.broadcast_to(ramp, (n, 56, 56, 3))  # 56x56: 2x2 merged patches per frame
        out[seconds] = (str(write_mp4(folder / f"clip_{seconds}s.mp4", frames, fps)), n / fps)
    return out


@pytest.fixture(scope="module")
def tiny(tiny_dirs):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    path = tiny_dirs["qwen2_5_vl"]
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(path)


def forward_positions(model, inputs) -> torch.Tensor:
    """The [3, L] M-RoPE position ids the model's forward passes to its language model."""
    seen = {}

    def grab(_module, _args, kwargs):
        seen["pos"] = kwargs["position_ids"]

    ids = torch.tensor([inputs.input_ids])
    types_ = (ids == model.config.video_token_id).long() * mrope.VIDEO
    handle = model.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=types_, **inputs.video_fields)
    finally:
        handle.remove()
    return seen["pos"][-3:, 0]  # 5.17 may prepend a text-position row


def prompt_for(path: str, processor, time_encoding: str):
    cfg = VideoConfig(nframes=NFRAMES, min_pixels=4 * 28 * 28, max_pixels=4 * 28 * 28, cache_size=0,
                      time_encoding=time_encoding)
    row = {"problem": "Describe the video.", "solution": "<answer>x</answer>", "problem_type": "caption",
           "video": path}
    clip = load_video(row, cfg)
    assert clip.num_frames == NFRAMES
    return build_prompt_inputs(processor, make_conversation(row, cfg), [clip], min_pixels=cfg.min_pixels,
                               max_pixels=cfg.max_pixels, time_encoding=cfg.time_encoding)


def check_video_positions(model, inputs, second_per_grid: float) -> list[int]:
    """Assert Qwen's formula on the video tokens and the text after them; return the grids' offsets."""
    tps = model.config.vision_config.tokens_per_second
    pos = forward_positions(model, inputs)
    ids = torch.tensor(inputs.input_ids)
    video = (ids == model.config.video_token_id).nonzero().flatten()
    start, end = int(video[0]), int(video[-1]) + 1
    t, h, w = inputs.video_fields["video_grid_thw"][0].tolist()
    per_grid = (h // 2) * (w // 2)
    temporal = pos[0, start:end].reshape(t, per_grid)
    want = [math.floor(i * second_per_grid * tps) for i in range(t)]
    assert temporal.tolist() == [[start + x] * per_grid for x in want]
    assert torch.equal(pos[:, :start], torch.arange(start).expand(3, -1))  # text before: 0, 1, 2, ...
    after = int(pos[:, start:end].max()) + 1
    assert torch.equal(pos[:, end:], torch.arange(after, after + len(ids) - end).expand(3, -1))
    return want


@pytest.mark.parametrize("seconds", sorted(CLIPS))
def test_absolute_time_positions_follow_qwens_formula(tiny, videos, seconds):
    model, processor = tiny
    path, duration = videos[seconds]
    inputs = prompt_for(path, processor, "absolute")
    second_per_grid = 2 * duration / NFRAMES  # temporal_patch_size 2 frames per grid
    assert inputs.video_fields["second_per_grid_ts"].tolist() == pytest.approx([second_per_grid], rel=1e-6)
    offsets = check_video_positions(model, inputs, second_per_grid)
    assert len(set(offsets)) > 1, "frames of the clip share one temporal position"


@pytest.mark.parametrize("seconds", [1.3, 60])
def test_reference_time_is_one_second_per_grid(tiny, videos, seconds):
    model, processor = tiny
    inputs = prompt_for(videos[seconds][0], processor, "reference")
    assert inputs.video_fields["second_per_grid_ts"].tolist() == [1.0]
    assert inputs.second_per_grid_ts == [1.0]  # what a vLLM request carries (vllm_video builds it from this)
    offsets = check_video_positions(model, inputs, 1.0)
    tps = model.config.vision_config.tokens_per_second
    assert offsets == [i * tps for i in range(len(offsets))]


# --- the switch: patched only while the installed transformers is wrong -------------------------------
def test_patch_is_in_place_exactly_when_the_installed_function_is_wrong():
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

    original = mrope.original_rope_index(Qwen2_5_VLModel)
    if original is None:  # a transformers that computes it right: left alone
        assert Qwen2_5_VLModel.get_rope_index is not mrope.reference_rope_index
        assert mrope.agrees_with_reference(Qwen2_5_VLModel.get_rope_index, Qwen2_5_VLModel)
    else:  # transformers 5.17: the probe sees the truncation, the reference is installed
        assert not mrope.agrees_with_reference(original, Qwen2_5_VLModel)
        assert Qwen2_5_VLModel.get_rope_index is mrope.reference_rope_index


def test_probe_leaves_a_correct_implementation_and_replaces_a_truncating_one():
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

    def truncating(self, *args, second_per_grid_ts=None, **kwargs):  # 5.17's bug: int(seconds) per grid
        return mrope.reference_rope_index(self, *args, second_per_grid_ts=second_per_grid_ts.long().float(),
                                          **kwargs)

    def correct(self, *args, **kwargs):  # e.g. a later transformers: same numbers, other code
        return mrope.reference_rope_index(self, *args, **kwargs)

    for impl, replaced in ((correct, False), (truncating, True)):
        cls = type("Qwen2_5_VLModel", (Qwen2_5_VLModel,), {"get_rope_index": impl})
        module = types.ModuleType("fake_modeling")
        module.Qwen2_5_VLModel = cls
        assert mrope.patch_module(module) is replaced
        assert (cls.get_rope_index is mrope.reference_rope_index) is replaced
        assert mrope.original_rope_index(cls) is (impl if replaced else None)


# --- float64, as vLLM 0.31 computes it (issue 20, item 6) -------------------------------------------------
COMMON_FPS = (10, 12, 15, 23.976, 24, 25, 29.97, 30, 48, 50, 59.94, 60)


def vllm_temporal(num_grids: int, second_per_grid: float, tokens_per_second: int) -> list[int]:
    """vLLM 0.31's arithmetic, written from its source (Qwen2_5_VLForConditionalGeneration.iter_mm_grid_thw and
    get_mrope_input_positions): t_factor = second_per_grid_ts.item() * tokens_per_second (Python floats), then
    np.indices(...)[0] * t_factor cast to int64 when t_factor != 1."""
    t_factor = second_per_grid * tokens_per_second
    grid = np.indices((num_grids, 1, 1))[0]
    if t_factor != 1.0:
        grid = (grid * t_factor).astype(np.int64)
    return grid.reshape(-1).tolist()


def test_temporal_positions_match_vllm_float64_over_realistic_clip_lengths():
    """Clips of 8 to 512 frames at common frame rates, 16 or 32 frames sampled: second_per_grid_ts is the float32
    the processor returns (2 / sampled fps); every grid's position equals vLLM's."""
    cases = float32_differs = 0
    for nframes in (16, 32):
        for fps in COMMON_FPS:
            for total in range(8, 513):
                sampled_fps = nframes / total * fps  # qwen_vl_utils.sample_fps: the clip's sampling rate
                second_per_grid = float(np.float32(2 / sampled_fps))  # the processor's float32 tensor, read back
                grids = nframes // 2
                want = vllm_temporal(grids, second_per_grid, 2)
                assert mrope.temporal_positions(grids, second_per_grid, 2).tolist() == want, (nframes, fps, total)
                cases += 1
                float32_differs += (torch.arange(grids) * second_per_grid * 2).long().tolist() != want
    print(f"\n{cases} clip lengths; float32 arithmetic would differ from vLLM on {float32_differs} "
          f"({100 * float32_differs / cases:.2f} %)")
    assert float32_differs > 0  # the scan covers the lengths where float32 and float64 part


def test_the_forward_positions_of_80_frames_at_24_fps_are_vllms():
    """The case of the issue, through the installed get_rope_index: grid 6 at 4 (float64), not 5 (float32)."""
    from transformers import Qwen2_5_VLConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

    owner = Qwen2_5_VLModel.__new__(Qwen2_5_VLModel)
    object.__setattr__(owner, "config", Qwen2_5_VLConfig(vision_config={"spatial_merge_size": 2,
                                                                         "tokens_per_second": 2}))
    seconds = torch.tensor([2 / (16 / 80 * 24)], dtype=torch.float32)
    types_ = torch.tensor([[0, 0] + [mrope.VIDEO] * 8 + [0]])
    positions, _ = Qwen2_5_VLModel.get_rope_index(
        owner, torch.where(types_ == mrope.VIDEO, 7, 3), mm_token_type_ids=types_,
        video_grid_thw=torch.tensor([[8, 2, 2]]), second_per_grid_ts=seconds, attention_mask=torch.ones_like(types_))
    want = vllm_temporal(8, float(seconds[0]), 2)
    assert want[6] == 4
    assert positions[0, 0, 2:10].tolist() == [2 + x for x in want]
