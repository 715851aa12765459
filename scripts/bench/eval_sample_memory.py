#!/usr/bin/env python
"""Memory of one Video-MME sample under the paper's QA protocol (1 fps, at most 128 frames, 128·28·28 to
196·28·28 pixels per frame, up to 2048 new tokens): what the evaluation builds for it, measured on this CPU
with the tiny model, and what the same inputs imply for Qwen2.5-VL-7B.

    .venv/bin/python scripts/bench/eval_sample_memory.py [--seconds 900] [--new-tokens 16] [--json PATH]

Measured (CPU, the evaluation's own code path: `load_video`, `HFGenerator.prepare`, one `generate`): frames
sampled, the decoded clip and the processor's pixel tensor in bytes, visual and prompt tokens, and the
process's peak resident memory after each step (`ru_maxrss`). The inputs do not grow with the video's length
past 128 s: the frame count is capped and only the sampled frames are decoded. Computed for the 7B (published
shapes, `_model_shapes.py`; bf16, batch size 1, generation with a KV cache, sdpa attention): weights, the KV
cache at prompt + 2048 tokens, the vision tower's and the decoder's largest activations during the prefill.
"""
from __future__ import annotations

import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

GIB = 1024 ** 3


def peak_rss() -> int:
    """Peak resident memory of this process so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sevenb_estimate(frames_grid: tuple[int, int, int], prompt_tokens: int, new_tokens: int) -> dict[str, float]:
    """GiB of the 7B's memory for one sample of this grid (see the module docstring)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from _model_shapes import SIZES, make_config

    with torch.device("meta"):
        params = sum(p.numel() for p in Qwen2_5_VLForConditionalGeneration(make_config("7b")).parameters())
    text, vision = SIZES["7b"]["text"], SIZES["7b"]["vision"]
    t, h, w = frames_grid
    patches = t * h * w  # before the 2x2 merge; attention runs per window and, in 4 blocks, per temporal slice
    seq = prompt_tokens + new_tokens
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    kv = 2 * text["num_hidden_layers"] * text["num_key_value_heads"] * head_dim * 2 * seq
    vision_act = patches * (2 * vision["hidden_size"] + 2 * vision["intermediate_size"]) * 2  # hidden + gate/up
    full_attn_slice = vision["num_heads"] * (h * w) ** 2 * 2  # one temporal slice, if sdpa fell back to math
    decoder_act = prompt_tokens * (2 * text["hidden_size"] + 2 * text["intermediate_size"]) * 2
    pixel_values = patches * 3 * vision["temporal_patch_size"] * vision["patch_size"] ** 2 * 4  # float32 input
    total = params * 2 + kv + max(vision_act, decoder_act) + pixel_values
    return {"parameters_billion": params / 1e9, "weights_gib": params * 2 / GIB, "kv_cache_gib": kv / GIB,
            "vision_prefill_activations_gib": vision_act / GIB, "vision_full_attention_slice_math_gib": full_attn_slice / GIB,
            "decoder_prefill_activations_gib": decoder_act / GIB, "pixel_values_float32_gib": pixel_values / GIB,
            "sequence_tokens": seq, "total_gib": total / GIB}


def main() -> int:
    p = C.base_parser(__doc__)
    p.add_argument("--seconds", type=float, default=900.0, help="length of the synthetic video (default 15 min)")
    p.add_argument("--new-tokens", type=int, default=16, help="tokens generated on CPU (the 7B estimate uses 2048)")
    args = p.parse_args()
    C.set_threads(args.threads)
    report = C.Report("One 128-frame Video-MME sample: memory")
    C.header(report, args)
    from versavid_r1.data import load_video, make_conversation
    from versavid_r1.eval.config import parse_eval_args
    from versavid_r1.eval.suite import Generators

    video = C.long_video(args.seconds, fps=2.0)  # 2 fps source: cheap to write, the 1 fps sampling sees no difference
    model = C.tiny_vl_model()
    cfg = parse_eval_args(["--config", str(C.REPO_ROOT / "configs/eval/mcqa.yaml"), "--model", str(model),
                           "--device", "cpu", "--max_new_tokens", str(args.new_tokens)])
    row = {"problem": "What is the video about?\nOptions:\nA. Law.\nB. Art.\nC. Food.\nD. Pets.",
           "solution": "<answer>A</answer>", "problem_type": "MCQA", "video": str(video)}
    generator = Generators().get(cfg)
    base = peak_rss()
    clip = load_video(row, cfg.video_config())
    after_decode = peak_rss()
    inputs = generator.prepare(make_conversation(row, cfg.video_config(), prompt=cfg.policy_prompt_config()), [clip])
    after_prepare = peak_rss()
    generator.generate([inputs])
    after_generate = peak_rss()
    grid = tuple(int(x) for x in inputs.video_fields["video_grid_thw"][0])
    pixel_values = inputs.video_fields["pixel_values_videos"]
    data = {
        "video_seconds": args.seconds, "frames": int(clip.num_frames), "frame_size": list(clip.frames.shape[-2:]),
        "grid_thw": list(grid), "visual_tokens": grid[0] * grid[1] * grid[2] // 4, "prompt_tokens": len(inputs.input_ids),
        "decoded_clip_mib": clip.frames.numel() * clip.frames.element_size() / 2**20,
        "pixel_values_mib": pixel_values.numel() * pixel_values.element_size() / 2**20,
        "cpu_peak_rss_before_mib": base / 2**20, "cpu_peak_rss_decode_mib": after_decode / 2**20,
        "cpu_peak_rss_prepare_mib": after_prepare / 2**20, "cpu_peak_rss_generate_mib": after_generate / 2**20,
        "sevenb": sevenb_estimate(grid, len(inputs.input_ids), cfg.max_new_tokens if args.new_tokens > 2048 else 2048),
    }
    report.data.update(data)
    report.add(f"video {args.seconds:g} s -> {data['frames']} frames of {data['frame_size']}, grid {grid}, "
               f"{data['visual_tokens']} visual tokens, {data['prompt_tokens']}-token prompt")
    report.add(f"decoded clip {data['decoded_clip_mib']:.1f} MiB, pixel tensor {data['pixel_values_mib']:.1f} MiB (float32)")
    report.add(f"CPU peak RSS: {data['cpu_peak_rss_before_mib']:.0f} MiB before, "
               f"{data['cpu_peak_rss_decode_mib']:.0f} after decoding, {data['cpu_peak_rss_prepare_mib']:.0f} after "
               f"the processor, {data['cpu_peak_rss_generate_mib']:.0f} after generate (tiny model)")
    for key, value in data["sevenb"].items():
        report.add(f"7B {key}: {value:.2f}" if isinstance(value, float) else f"7B {key}: {value}")
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
