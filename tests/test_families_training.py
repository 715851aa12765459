"""GRPO on tiny Qwen3-VL, Qwen3-VL-MoE and Qwen3.5 policies: the shared passes against the plain path, one step
per family (plain, LoRA, DeepSpeed ZeRO-3) on all four problem types with the video in every log-prob pass,
and the vLLM colocate path through the trainer.

Oracles as for Qwen2.5-VL (test_shared_prefix_loss.py, test_trainer_prefill.py, test_trainer.py): the trainer's
own plain path (TRL's log-prob forward, every row with its video) for log-probs, entropies and every gradient
(1e-5, fp32); TRL's plain batched generate for greedy completions; a direct forward of the model with the video
for the loss's log-probs; a forward hook on the vision tower for what was encoded when; weights read back from
disk after the ZeRO-3 step.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest
import torch

from conftest import run_isolated
from test_shared_prefix_loss import COMPLETION, assert_same, plain_rows, run_logps
from test_trainer import changed, fake_colocate, loss_logps_vs_direct_forward, make_trainer, vision_params
from test_trainer_prefill import VisionCounter
from test_vllm_video import hf_processor_as_vllm
from versavid_r1.data import VideoConfig, load_video
from versavid_r1.families import FAMILIES

ROOT = Path(__file__).resolve().parents[1]
# 8 frames (4 groups, 4 timestamps) at a small pixel budget: a 4 x 2 x 4 grid per video (32 px per token)
VIDEO8 = VideoConfig(nframes=8, min_pixels=4 * 32 * 32, max_pixels=4 * 32 * 32, image_patch_size=16)
QWEN3 = ("qwen3_vl", "qwen3_vl_moe", "qwen3_5")
LINEAR_ATTENTION = "linear-attention (Gated DeltaNet) layers"


def lora(arch: str):
    from peft import LoraConfig

    return LoraConfig(r=4, lora_alpha=8, target_modules=list(FAMILIES[arch].lora_targets), task_type="CAUSAL_LM")


# --- the shared-prefix loss pass ---------------------------------------------------------------------------
@pytest.mark.parametrize("arch, variant", [("qwen3_vl", "gradient-checkpointing"),
                                           ("qwen3_vl_moe", "lora+gradient-checkpointing"), ("qwen3_5", "plain")])
def test_shared_prefix_logps_and_every_gradient_equal_the_plain_path(qwen3_dirs, demo_rows, tmp_path, caplog, arch,
                                                                     variant):
    extra = {"gradient_checkpointing": "gradient-checkpointing" in variant}
    if "lora" in variant:
        extra["peft_config"] = lora(arch)
    trainer = make_trainer(qwen3_dirs[arch], demo_rows[:2], VIDEO8, tmp_path, **extra)
    trainer.model.train()
    if extra["gradient_checkpointing"]:
        trainer.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": "lora" in variant})
    ids, mask, videos, valid = plain_rows(trainer, [0, 0, 0, 1, 1])
    assert videos[0].video_fields["video_grid_thw"][0, 0] == 4, "8 frames: 4 frame groups, 4 timestamps"
    assert len(videos[0].input_ids) != len(videos[3].input_ids), "two prompt lengths: left padding exercised"
    with caplog.at_level(logging.WARNING, logger="versavid_r1.trainer.sharing"):
        shared = run_logps(trainer, True, ids, mask, videos, valid, backward=arch != "qwen3_5")
    notes = [r.getMessage() for r in caplog.records if "shared-prefix log-probs not used" in r.getMessage()]
    if arch == "qwen3_5":  # a recurrent state cannot be split by a block mask: TRL's plain path, said once
        assert shared[3] == [5] and len(notes) == 1 and LINEAR_ATTENTION in notes[0]
        return
    plain = run_logps(trainer, False, ids, mask, videos, valid)
    assert plain[3] == [5] and shared[3] == [2] and not notes, "each prompt's video encoded once"
    assert_same(plain, shared, valid)
    if "lora" in variant:
        assert all("lora_" in n for n in shared[2])
    # a forward that must also return what the packed layout cannot give (an MoE router loss) says why it is plain
    trainer.share_prompt_loss = True
    with caplog.at_level(logging.WARNING, logger="versavid_r1.trainer.sharing"):
        assert trainer._shared_prefix_logps(trainer.model, videos, ids, mask, COMPLETION, False, ["router loss"]) is None
    assert any("not used (router loss)" in r.getMessage() for r in caplog.records)


# --- one GRPO step per family, plain and LoRA ---------------------------------------------------------------
@pytest.mark.parametrize("arch", QWEN3)
def test_one_step_on_all_four_problem_types_trains_with_the_video_in_every_logprob_pass(
        qwen3_dirs, demo_rows, video_cfg, tmp_path, arch):
    trainer = make_trainer(qwen3_dirs[arch], demo_rows[:4], video_cfg, tmp_path, per_device_train_batch_size=8)
    model = trainer.model
    before = vision_params(model)
    counter = VisionCounter(model)
    try:
        trainer.train()
    finally:
        counter.close()
    assert trainer.state.global_step == 1 and torch.isfinite(torch.tensor(trainer.state.log_history[0]["loss"]))
    assert any(grad for _, grad in counter.calls), "the loss forward ran the vision tower with gradients"
    moved = changed(before, model)
    assert len(moved) == len(before), f"vision parameters not updated: {sorted(set(before) - set(moved))[:5]}"
    # frames sized for the model's 16 px patch by the loader itself (the config given said 14): no second resize
    assert (video_cfg.image_patch_size, trainer.video_config.image_patch_size) == (14, 16)
    clip = load_video(demo_rows[0], trainer.video_config)
    assert clip.frames.shape[-1] % 32 == 0 and torch.equal(trainer._build_prompt(demo_rows[0])[1].frames[0], clip.frames)
    batch = trainer._buffered_inputs[0]
    # the step's own batch (all four problem types): the loss's log-probs against a direct forward of each row
    err, gap = loss_logps_vs_direct_forward(trainer, batch)
    assert err < 1e-5 and gap > 1e-3, (err, gap)


@pytest.mark.parametrize("arch", QWEN3)
def test_one_lora_step_trains_the_adapters_of_language_and_vision(qwen3_dirs, demo_rows, video_cfg, tmp_path, arch):
    trainer = make_trainer(qwen3_dirs[arch], demo_rows[:4], video_cfg, tmp_path, per_device_train_batch_size=8,
                           peft_config=lora(arch))
    adapters = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    assert any("visual" in n for n in adapters) and any("language_model" in n for n in adapters)
    trainer.train()
    now = dict(trainer.model.named_parameters())
    moved = [n for n, p in adapters.items() if not torch.equal(p, now[n])]
    assert any("visual" in n for n in moved) and any("language_model" in n for n in moved)


def test_vllm_colocate_requests_carry_the_video_of_each_row(qwen3_dirs, demo_rows, video_cfg, tmp_path, monkeypatch):
    """TRL's real colocate `VLLMGeneration.generate` (vLLM itself stubbed) through the trainer, Qwen3-VL."""
    trainer = make_trainer(qwen3_dirs["qwen3_vl"], demo_rows[:4], video_cfg, tmp_path)
    gen = fake_colocate(trainer, monkeypatch)
    out = trainer._generate_and_score_completions([trainer.train_dataset[i] for i in (0, 0, 2, 2)])
    assert len(gen.llm.requests) == 4
    for req, row in zip(gen.llm.requests, out["videos"]):
        assert req["prompt_token_ids"] == row.placeholder_ids  # one template placeholder per video
        assert hf_processor_as_vllm(trainer.processing_class, req)["prompt_token_ids"] == row.input_ids


# --- DeepSpeed ZeRO-3 ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_zero3_step_per_family_trains_the_vision_tower(qwen3_dirs, demo_jsonl, tmp_path):
    """One GRPO step under DeepSpeed ZeRO-3 on CPU for each family in turn, in ONE process (DeepSpeed starts once),
    on all four problem types (a rule reward, no judge); weights read back from the saved model, and the saved
    model loaded back under ZeRO-3 (the MoE's experts: compat/zero3_transpose.py)."""
    from safetensors.torch import load_file

    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "tests" / "ds_family_steps.py"), str(demo_jsonl), str(out),
           json.dumps({arch: qwen3_dirs[arch] for arch in QWEN3})]
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1"}
    status, stdout, stderr = run_isolated(cmd, env, timeout=280, cwd=ROOT)
    assert status == 0, stdout[-3000:] + stderr[-3000:]
    result = json.loads(stdout.split("RESULT ", 1)[1].splitlines()[0])
    for arch in QWEN3:
        record = result[arch]
        assert record["step"] == 1 and record["zero_stage"] == 3
        assert record["reloaded_equal"], f"{arch}: the trained model loads back under ZeRO-3 unchanged"
        assert record["types"] == ["DarkEventInfer", "MCQA", "MixVidQA", "caption"]
        assert record["vision_calls_with_grad"] >= 1, "the loss forward encoded the video"
        fallbacks = record["shared_fallbacks"]
        assert (len(fallbacks) == 1 and LINEAR_ATTENTION in fallbacks[0]) if arch == "qwen3_5" else not fallbacks
        before = load_file(f"{qwen3_dirs[arch]}/model.safetensors")
        after = load_file(f"{out}/{arch}/model.safetensors")
        visual = [k for k in before if "visual" in k]
        assert visual and all(k in after for k in visual)
        assert any(not torch.equal(before[k], after[k]) for k in visual), f"{arch}: vision tower unchanged"
