"""Qwen3-VL, Qwen3-VL-MoE and Qwen3.5 as the policy: loading, video time, and the vLLM request.

Video time (these models print a `<t seconds>` timestamp before each 2-frame group) is checked against
independent oracles on the demo's real mp4s: the model's own processor sampling the decoded file itself (plain
rows), the decoder's presentation times (DarkEventInfer, masked frames included), and the interleaved timeline
(MixVidQA: the times of the frames shown, not of their sources). The vLLM request is checked against the HF
processor called the way vLLM 0.31's Qwen3-VL processor calls it (test_vllm_video.hf_processor_as_vllm), for a
vLLM that replaces the bare `<|video_pad|>` and for one that replaces the whole placeholder.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import av
import pytest
import torch

from test_vllm_video import hf_processor_as_vllm, request_for
from versavid_r1 import families
from versavid_r1.data import VideoConfig, load_video, make_conversation
from versavid_r1.tasks import DARK_EVENT_INFER, MCQA, MIX_VID_QA
from versavid_r1.trainer.video_inputs import build_prompt_inputs
from versavid_r1.trainer.vllm_video import video_config_engine_kwargs

ROOT = Path(__file__).resolve().parents[1]
QWEN3 = ("qwen3_vl", "qwen3_vl_moe", "qwen3_5")
# 16 frames as the paper samples, a small pixel budget: an 8 x 2 x 4 grid per video (patch 16)
VIDEO16 = VideoConfig(nframes=16, min_pixels=4 * 32 * 32, max_pixels=4 * 32 * 32, image_patch_size=16, cache_size=0)
STAMP = re.compile(r"<(\d+\.\d) seconds>")


def processor_of(path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(path)


def row_of(rows, problem_type):
    return next(r for r in rows if r["problem_type"] == problem_type)


def printed_times(processor, ids) -> list[float]:
    return [float(t) for t in STAMP.findall(processor.tokenizer.decode(ids))]


def group_means(times: list[float]) -> list[float]:
    """The mean time of each 2-frame group, as the processors average the two frames of a temporal patch."""
    return [(times[i] + times[i + 1]) / 2 for i in range(0, len(times), 2)]


# --- loading ------------------------------------------------------------------------------------------------
def test_each_family_loads_with_its_own_classes(qwen3_dirs, tiny_dirs):
    from versavid_r1.modeling import load_vl_model, lora_targets_for, vision_patch_size

    for arch, path in {**qwen3_dirs, "qwen2_5_vl": tiny_dirs["qwen2_5_vl"]}.items():
        model = load_vl_model(path, dtype="float32", attn_implementation="sdpa")
        family = families.family(model.config)
        assert type(model).__name__ == family.model_class and family.model_type == arch
        processor = processor_of(path)
        assert families.video_time(processor) == family.video_time
        assert vision_patch_size(path) == processor.video_processor.patch_size == (14 if arch == "qwen2_5_vl" else 16)
        # every default LoRA target names modules of this model (peft stops on a target that matches none)
        leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        assert set(lora_targets_for(model.config)) <= leaves, arch
    assert families.family("qwen3_5").video_time == families.TEXT_TIMESTAMPS
    with pytest.raises(ValueError, match="unsupported model_type 'llava'.*qwen3_vl"):
        families.family("llava")


def test_qwen35_template_opens_a_think_block_unless_thinking_is_off(qwen3_dirs):
    processor = processor_of(qwen3_dirs["qwen3_5"])
    messages = [{"role": "user", "content": [{"type": "video", "video": "x"}, {"type": "text", "text": "Q"}]}]
    on = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    off = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert on.endswith("<|im_start|>assistant\n<think>\n") and not on.startswith("<|im_start|>system")
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert "<|vision_start|><|video_pad|><|vision_end|>Q" in on


def test_the_difficulty_filter_and_evaluation_load_and_run_a_qwen35_policy(qwen3_dirs, demo_jsonl, tmp_path):
    """`run_filter` builds its generator itself (`eval.generation.make_generator` -> `eval.models.load_eval_model`),
    so this is evaluation's loading path too; frames are sized for the model's 16 px patch."""
    import json

    from versavid_r1.data.difficulty import FilterConfig
    from versavid_r1.data.difficulty_run import run_filter

    rows = [json.loads(line) for line in demo_jsonl.read_text().splitlines()]
    data = demo_jsonl.parent / "qwen35-mcqa.jsonl"
    data.write_text(json.dumps(next(r for r in rows if r["problem_type"] == MCQA)) + "\n")
    cfg = FilterConfig(model=qwen3_dirs["qwen3_5"], data_path=str(data), out=str(tmp_path / "kept.jsonl"),
                       num_samples=2, nframes=4, min_pixels=4 * 32 * 32, max_pixels=8 * 32 * 32, max_new_tokens=6,
                       batch_size=2, dtype="float32", device="cpu", seed=3)
    assert cfg.video_config().image_patch_size == 16, "read from the model's config.json"
    report = run_filter(cfg)
    assert report["run"]["generated"] == 1 and report["per_type"]["MCQA"]["rows"] == 1
    generations = [json.loads(line) for line in (Path(cfg.output_dir) / "generations.jsonl").read_text().splitlines()]
    assert len(generations[0]["completions"]) == 2


# --- video time ---------------------------------------------------------------------------------------------
def decode_all(path: str) -> tuple[torch.Tensor, float]:
    """Every frame of an mp4 (uint8 [N, 3, H, W]) and its frame rate, read with PyAV (not the project's reader)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = [torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1) for f in container.decode(stream)]
        return torch.stack(frames), float(stream.average_rate)


def test_printed_times_are_the_real_times_of_the_frames_shown(qwen3_dirs, demo_rows):
    from transformers.video_utils import VideoMetadata

    processor = processor_of(qwen3_dirs["qwen3_vl"])
    # a plain row: the model's own processor, sampling the decoded file itself, prints the same times
    row = row_of(demo_rows, MCQA)
    clip = load_video(row, VIDEO16)
    ours = printed_times(processor, build_prompt_inputs(processor, make_conversation(row, VIDEO16), [clip]).input_ids)
    frames, fps = decode_all(clip.paths[0])
    own = processor(text=["<|vision_start|><|video_pad|><|vision_end|>"], videos=[frames], return_tensors="pt",
                    video_metadata=[VideoMetadata(total_num_frames=len(frames), fps=fps)], do_sample_frames=True,
                    num_frames=16, fps=None)
    assert len(ours) == 8 and ours == printed_times(processor, own["input_ids"][0])

    # DarkEventInfer: the decoder's presentation times of the frames shown, blacked-out frames included
    row = row_of(demo_rows, DARK_EVENT_INFER)
    clip = load_video(row, VIDEO16)
    got = printed_times(processor, build_prompt_inputs(processor, make_conversation(row, VIDEO16), [clip]).input_ids)
    assert got == [float(f"{t:.1f}") for t in group_means(clip.timestamps)]
    start, end = row["mask_span"]
    dark = [g for g in range(8) if clip.masked[2 * g] or clip.masked[2 * g + 1]]
    assert dark and all(start - 1.0 <= got[g] <= end for g in dark), "the black groups carry the gap's times"

    # MixVidQA: the times on the interleaved timeline (each group's two sampled moments, at most one frame of
    # clip a earlier), not the source times, which jump back at every switch between the clips
    row = row_of(demo_rows, MIX_VID_QA)
    clip = load_video(row, VIDEO16)
    got = printed_times(processor, build_prompt_inputs(processor, make_conversation(row, VIDEO16), [clip]).input_ids)
    moments = group_means([(k + 0.5) * clip.duration / clip.num_frames for k in range(clip.num_frames)])
    assert all(m - 1 / clip.timeline_fps - 0.05 <= t <= m + 0.05 for t, m in zip(got, moments)), (got, moments)
    assert got == sorted(got) and got[-1] < clip.duration
    assert got != [float(f"{t:.1f}") for t in group_means(clip.timestamps)]

    with pytest.raises(ValueError, match="Qwen2.5-VL only"):
        build_prompt_inputs(processor, make_conversation(row, VIDEO16), [clip], time_encoding="reference")


# --- the vLLM request ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", QWEN3)
def test_vllm_expands_the_request_into_the_trainers_ids(qwen3_dirs, demo_rows, arch):
    processor = processor_of(qwen3_dirs[arch])
    engine = video_config_engine_kwargs(VIDEO16, processor=processor)
    assert engine["mm_processor_kwargs"] == {"size": {"shortest_edge": 4096, "longest_edge": 4096 * 16}}
    assert engine["max_num_batched_tokens"] == 8 * 4  # 8 groups of 64x64 px at 32 px per token
    for problem_type in (DARK_EVENT_INFER, MIX_VID_QA):
        row = row_of(demo_rows, problem_type)
        clip = load_video(row, VIDEO16)
        inputs = build_prompt_inputs(processor, make_conversation(row, VIDEO16), [clip])
        times = printed_times(processor, inputs.input_ids)
        for target, wrap in (("pad", False), ("placeholder", True)):
            request = request_for(processor, inputs, wrap=wrap)
            seen = hf_processor_as_vllm(processor, request, engine["mm_processor_kwargs"], vllm_target=target)
            assert seen["prompt_token_ids"] == inputs.input_ids, (problem_type, target)
            assert torch.equal(seen["video_grid_thw"], inputs.video_fields["video_grid_thw"])
            assert [float(f"{t:.1f}") for t in seen["timestamps"][0]] == times
        # the request form must suit the installed vLLM: the wrong one loses or adds the template's outer pair
        unwrapped = hf_processor_as_vllm(processor, request_for(processor, inputs), vllm_target="placeholder")
        assert len(unwrapped["prompt_token_ids"]) == len(inputs.input_ids) - 2


# --- configs -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, model", [("grpo_qwen3vl_8b_8gpu", "Qwen/Qwen3-VL-8B-Instruct"),
                                         ("grpo_qwen3vl_moe_30b_8gpu", "Qwen/Qwen3-VL-30B-A3B-Instruct"),
                                         ("grpo_qwen35_9b_8gpu", "Qwen/Qwen3.5-9B")])
def test_family_configs_parse_and_keep_the_paper_recipe(name, model):
    """Through the entry point's own parser (use_cpu only so that bf16 parses on a CPU machine)."""
    import yaml

    from versavid_r1.grpo import make_parser

    script, training, model_args = make_parser().parse_args_and_config(
        args=["--config", str(ROOT / "configs" / f"{name}.yaml"), "--use_cpu", "true"])
    paper = yaml.safe_load((ROOT / "configs" / "grpo_paper_8xA800.yaml").read_text())
    assert model_args.model_name_or_path == model and model_args.attn_implementation == "sdpa"
    assert script.video_config().image_patch_size == 16 and script.video_time_encoding == "absolute"
    # the paper's 128..196 tokens per 2-frame group, at 32 x 32 px per token
    assert (script.min_pixels // 32 ** 2, script.max_pixels // 32 ** 2) == (128, 196) == (
        paper["min_pixels"] // 28 ** 2, paper["max_pixels"] // 28 ** 2)
    for key in ("num_generations", "learning_rate", "beta", "temperature", "top_k", "nframes", "max_prompt_length",
                "max_completion_length", "per_device_train_batch_size", "gradient_accumulation_steps", "deepspeed"):
        value = getattr(training, key, None) if hasattr(training, key) else getattr(script, key)
        assert value == paper[key], key
    assert training.per_device_train_batch_size % training.num_generations == 0 and script.share_prompt_loss
    assert training.chat_template_kwargs == ({"enable_thinking": False} if "qwen35" in name else None)


# --- the launcher's family switch --------------------------------------------------------------------------
def test_launcher_builds_the_tiny_model_of_the_chosen_family(tmp_path):
    """`MODEL_FAMILY=qwen3vl bash run_qwen25vl_train.sh`: the tiny builder gets the family's arch (a recording
    `python` stands in for every step); an unknown family stops before anything runs."""
    stub = tmp_path / "bin"
    stub.mkdir()
    calls = tmp_path / "calls"
    (stub / "python").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (stub / "python").chmod(0o755)
    env = {**os.environ, "SKIP_INSTALL": "1", "PATH": f"{stub}{os.pathsep}{os.environ['PATH']}",
           "DEMO_DIR": str(tmp_path / "demo"), "OUTPUT_DIR": str(tmp_path / "run")}
    for family, arch in (("qwen3vl", "qwen3_vl"), ("qwen3vl_moe", "qwen3_vl_moe"), ("qwen35", "qwen3_5")):
        calls.unlink(missing_ok=True)
        proc = subprocess.run(["bash", str(ROOT / "run_qwen25vl_train.sh")], cwd=ROOT, capture_output=True, text=True,
                              env={**env, "MODEL_FAMILY": family}, timeout=60)
        lines = calls.read_text().splitlines()
        build = [ln for ln in lines if "make_tiny_qwen25vl.py" in ln]
        assert build == [f"scripts/make_tiny_qwen25vl.py --out {tmp_path}/demo/tiny-{family} --arch {arch} "
                         "--overwrite"], proc.stdout + proc.stderr
        assert any(f"--model_name_or_path {tmp_path}/demo/tiny-{family}" in ln for ln in lines)
    proc = subprocess.run(["bash", str(ROOT / "run_qwen25vl_train.sh")], cwd=ROOT, capture_output=True, text=True,
                          env={**env, "MODEL_FAMILY": "llava"}, timeout=60)
    assert proc.returncode == 2 and "MODEL_FAMILY must be" in proc.stderr
