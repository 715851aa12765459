#!/usr/bin/env python
"""Rollout: G completions of one video prompt from ONE shared prefill + ONE batched decode (this
project) vs G sequential `generate` calls (the original design), same model, same inputs, same lengths.

    .venv/bin/python scripts/bench/rollout.py --quick
    .venv/bin/python scripts/bench/rollout.py                      # 256 new tokens, 5 repeats
    .venv/bin/python scripts/bench/rollout.py --size small         # a wider CPU model

The prompt is built by the project's own path: an MCQA row on a 30 s mp4 -> versavid_r1.data.load_video
(16 frames, 128..196 x 28x28 px) -> make_conversation -> trainer.video_inputs.build_prompt_inputs; the
project side is the trainer's own generation call, `versavid_r1.trainer.shared_prefill.
generate_with_shared_prefill` (vision tower + prompt prefill once, KV cache copied G times, one batched
decode). The baseline runs `generate` on one copy, G times. TRL's plain batched path (G copies in one
`generate`, the vision tower run G times: this project before the shared prefill) is timed as well
and reported as INFO. All sample (temperature 1.0) exactly `--new-tokens` tokens (min_new_tokens =
max_new_tokens, vision tokens suppressed). Tokens/s counts generated tokens only; wall time includes
prefill and the vision tower.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def build_case(size: str = "tiny", nframes: int = 16, video_seconds: float = 30.0, arch: str = "qwen2_5_vl"):
    """(model, processor, PromptVideoInputs, suppress ids) of one MCQA video prompt. Families with 16 px patches
    (Qwen3-VL, Qwen3.5) get the paper's token budget: 128..196 tokens per 2-frame group, 128..196 x 32 x 32 px."""
    import torch

    from versavid_r1.data import VideoConfig, load_video, make_conversation
    from versavid_r1.modeling import load_processor, load_vl_model

    vi = C.import_video_inputs()
    model_dir = C.tiny_vl_model(size, arch)
    video = C.long_video(video_seconds, fps=30, width=640, height=360, seed=1)
    row = {"problem": "What does the coloured block do during the video?\nOptions:\nA. It moves\n"
                      "B. It disappears\nC. It changes size\nD. It stays still",
           "solution": "<answer>A</answer>", "problem_type": "MCQA", "video": str(video)}
    patch = 14 if arch in ("qwen2_5_vl", "qwen2_vl") else 16
    factor = (2 * patch) ** 2
    cfg = VideoConfig(nframes=nframes, cache_size=0, image_patch_size=patch, min_pixels=128 * factor,
                      max_pixels=196 * factor)
    processor = load_processor(model_dir, padding_side="left")
    model = load_vl_model(model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
    clip = load_video(row, cfg)
    prompt = vi.build_prompt_inputs(processor, make_conversation(row, cfg), [clip],
                                    min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels,
                                    time_encoding=cfg.time_encoding)
    suppress = vi.tokens_to_suppress(processor.tokenizer, model.config)
    return model, processor, prompt, suppress


def make_generate(model, processor, prompt, suppress: list[int], copies: int, new_tokens: int):
    """A no-argument function running ONE generate call over `copies` copies of the prompt."""
    import torch

    vi = C.import_video_inputs()
    tok = processor.tokenizer
    video_token_id = tok.convert_tokens_to_ids("<|video_pad|>")
    prompt_ids, fields = vi.collate_generation_fields([prompt] * copies, video_token_id)
    inputs = C.generate_inputs(prompt_ids, fields, tok.pad_token_id)
    gen_cfg = _generation_config(model, tok, suppress, new_tokens)
    width = inputs["input_ids"].shape[1]

    def run() -> int:
        with torch.inference_mode():
            out = model.generate(**inputs, generation_config=gen_cfg)
        produced = out.shape[1] - width
        if produced != new_tokens or out.shape[0] != copies:
            raise RuntimeError(f"expected {copies} x {new_tokens} new tokens, got {out.shape[0]} x {produced}")
        return copies * produced

    return run


def make_shared_generate(model, processor, prompt, suppress: list[int], copies: int, new_tokens: int):
    """A no-argument function running the trainer's shared-prefill generation for `copies` completions."""
    import torch

    from versavid_r1.trainer.shared_prefill import generate_with_shared_prefill

    vi = C.import_video_inputs()
    tok = processor.tokenizer
    prompt_ids, fields = vi.collate_generation_fields([prompt], tok.convert_tokens_to_ids("<|video_pad|>"))
    gen_cfg = _generation_config(model, tok, suppress, new_tokens)

    def run() -> int:
        with torch.inference_mode():
            out, width = generate_with_shared_prefill(model, prompt_ids, fields, copies, gen_cfg, tok.pad_token_id)
        produced = out.shape[1] - width
        if produced != new_tokens or out.shape[0] != copies:
            raise RuntimeError(f"expected {copies} x {new_tokens} new tokens, got {out.shape[0]} x {produced}")
        return copies * produced

    return run


def _generation_config(model, tok, suppress: list[int], new_tokens: int):
    from transformers import GenerationConfig

    return GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0, top_k=None,
                            max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                            pad_token_id=tok.pad_token_id, eos_token_id=model.generation_config.eos_token_id,
                            suppress_tokens=suppress)


def run_rollout(size: str = "tiny", generations: int = 8, new_tokens: int = 128, repeats: int = 3,
                nframes: int = 16, report: "C.Report | None" = None) -> dict:
    """Measure both designs (and TRL's plain batched path); returns the figures (seconds are medians).

    Also times each with ONE new token (vision tower + prompt prefill + one step), so the report
    splits each side into prefill and decode and shows which part batching speeds up."""
    report = report or C.Report("rollout")
    model, processor, prompt, suppress = build_case(size, nframes)

    def sequential_of(single):
        return lambda: sum(single() for _ in range(generations))

    cases = {
        "shared": make_shared_generate(model, processor, prompt, suppress, generations, new_tokens),
        "batched": make_generate(model, processor, prompt, suppress, generations, new_tokens),
        "sequential": sequential_of(make_generate(model, processor, prompt, suppress, 1, new_tokens)),
        "shared_prefill": make_shared_generate(model, processor, prompt, suppress, generations, 1),
        "batched_prefill": make_generate(model, processor, prompt, suppress, generations, 1),
        "sequential_prefill": sequential_of(make_generate(model, processor, prompt, suppress, 1, 1)),
    }
    cases["batched_prefill"]()  # warm-up (first calls allocate)
    times = C.interleaved(cases, repeats, warmup=0)
    med = {k: C.median(v) for k, v in times.items()}
    tokens = generations * new_tokens
    figures = {
        "model": size, "params": sum(p.numel() for p in model.parameters()),
        "prompt_tokens": len(prompt.input_ids), "video_grid_thw": prompt.video_fields["video_grid_thw"].tolist(),
        "generations": generations, "new_tokens": new_tokens, "repeats": repeats,
        "shared_s": med["shared"], "batched_s": med["batched"], "sequential_s": med["sequential"],
        "shared_prefill_s": med["shared_prefill"], "batched_prefill_s": med["batched_prefill"],
        "sequential_prefill_s": med["sequential_prefill"], "times": times,
    }
    for name in ("shared", "batched", "sequential"):
        figures[f"{name}_tok_s"] = tokens / med[name]
    figures["ratio"] = med["sequential"] / med["shared"]
    figures["plain_batched_ratio"] = med["sequential"] / med["batched"]
    decode = {k: max(med[k] - med[f"{k}_prefill"], 1e-9) for k in ("shared", "batched", "sequential")}
    figures["decode_ratio"] = decode["sequential"] / decode["shared"]
    figures["prefill_ratio"] = med["sequential_prefill"] / med["shared_prefill"]
    figures["plain_prefill_ratio"] = med["sequential_prefill"] / med["batched_prefill"]
    figures["prefill_share_shared"] = med["shared_prefill"] / med["shared"]
    report.add(f"model: {size} ({figures['params'] / 1e6:.2f} M params, {C.torch_threads()} torch thread(s)), "
               f"prompt {figures['prompt_tokens']} tokens (video grid {figures['video_grid_thw']}), "
               f"G={generations}, {new_tokens} new tokens each")
    report.add(f"shared prefill + batched decode x {generations} (this project): {C.spread(times['shared'])}  "
               f"{figures['shared_tok_s']:.0f} tok/s")
    report.add(f"plain batched (1 generate x {generations}, TRL's path): {C.spread(times['batched'])}  "
               f"{figures['batched_tok_s']:.0f} tok/s")
    report.add(f"sequential ({generations} generate x 1, original): {C.spread(times['sequential'])}  "
               f"{figures['sequential_tok_s']:.0f} tok/s")
    report.add(f"prefill only (vision tower + prompt + 1 token): shared {C.fmt_s(med['shared_prefill'])}, "
               f"plain batched {C.fmt_s(med['batched_prefill'])}, sequential {C.fmt_s(med['sequential_prefill'])}"
               f" -> {figures['prefill_ratio']:.2f}x (plain batched {figures['plain_prefill_ratio']:.2f}x)")
    report.add(f"decode only (the rest): shared {C.fmt_s(decode['shared'])}, plain batched "
               f"{C.fmt_s(decode['batched'])}, sequential {C.fmt_s(decode['sequential'])} -> "
               f"{figures['decode_ratio']:.2f}x; prefill is {100 * figures['prefill_share_shared']:.0f}% "
               f"of the shared call")
    return figures


def main(argv=None) -> int:
    p = C.base_parser(__doc__)
    p.add_argument("--size", default="tiny", choices=sorted(C.MODEL_SIZES))
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=None, help="default 64 quick, 256 full")
    p.add_argument("--nframes", type=int, default=16)
    a = p.parse_args(argv)
    C.set_threads(a.threads)
    report = C.Report("Rollout: shared prefill + batched decode vs sequential generation")
    C.header(report, a)
    new_tokens = a.new_tokens or (64 if a.quick else 256)
    f = run_rollout(a.size, a.generations, new_tokens, C.repeats_of(a), a.nframes, report)
    report.data = f
    report.ratio("rollout_prefill_batched_vs_sequential", f["prefill_ratio"])
    report.ratio("rollout_decode_batched_vs_sequential", f["decode_ratio"])
    report.ratio("rollout_plain_batched_vs_sequential", f["plain_batched_ratio"])
    report.ratio("rollout_batched_vs_sequential", f["ratio"], 4.0)
    return report.finish(a.json)


if __name__ == "__main__":
    sys.exit(main())
