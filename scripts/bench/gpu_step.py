#!/usr/bin/env python
"""GPU benchmark at real model sizes: a random-weight Qwen2.5-VL shaped like the published 3B and 7B
(configs built here from their published hyperparameters, nothing downloaded), bf16, sdpa attention,
one video prompt of 16 frames at 196*28*28 pixels. Measures:

- generation: G=8 completions of the prompt in one batched `generate` (this project) and, for the
  ratio, 8 sequential ones (the original design): tokens/s, prefill time, peak memory;
- one GRPO training step: G sequences (prompt + completion) forward + backward with gradient
  checkpointing and an AdamW step, micro-batched: step time, peak memory, and model FLOP
  utilisation (MFU) against this GPU's bf16 matmul peak measured in the same process.

    # on the GPU machine (device tool); needs only torch + transformers, no wheels to carry
    python scripts/bench/gpu_step.py --sizes 3b --quick --json $OUT/gpu_3b.json
    python scripts/bench/gpu_step.py --sizes 7b --json $OUT/gpu_7b.json
    # here, without a GPU
    python scripts/bench/gpu_step.py --dry-run                      # configs, parameters, FLOPs, memory plan
    python scripts/bench/gpu_step.py --sizes cpu-tiny --quick       # the whole code path on CPU, tiny config

Inputs are built with the project's own helpers (versavid_r1.trainer.video_inputs: collate the G
copies, mm_token_type_ids) around synthetic tensors of the right shapes: with random weights the pixel
values do not matter, only the shapes do (16 frames of 392x392 -> video grid 8x28x28 -> 1568 video
tokens). If the optimizer states do not fit (7B with AdamW on one 80 GB GPU), the step is measured
without the optimizer and the report says so; an out-of-memory generation or step is reported, not
hidden. One size per command keeps each run well under the device tool's 10 minutes.
"""
from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

C.add_repo_paths()

# Published hyperparameters (config.json of Qwen/Qwen2.5-VL-3B-Instruct and -7B-Instruct).
QWEN_IDS = dict(bos_token_id=151643, eos_token_id=151645, pad_token_id=151643, vision_start_token_id=151652,
                vision_end_token_id=151653, image_token_id=151655, video_token_id=151656)
QWEN_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, in_channels=3, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
                   tokens_per_second=2, hidden_act="silu")
SIZES: dict[str, dict] = {
    "3b": dict(text=dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                         num_key_value_heads=2, vocab_size=151936, max_position_embeddings=128000),
               vision=QWEN_VISION, ids=QWEN_IDS, tie_word_embeddings=True),
    "7b": dict(text=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=152064, max_position_embeddings=128000),
               vision=QWEN_VISION, ids=QWEN_IDS, tie_word_embeddings=False),
    # The same code path on a CPU in seconds (tests, --dry-run checks): not a benchmark.
    "cpu-tiny": dict(text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                               num_key_value_heads=2, vocab_size=1024, max_position_embeddings=32768),
                     vision=dict(QWEN_VISION, depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                                 fullatt_block_indexes=[1]),
                     ids=dict(bos_token_id=1000, eos_token_id=1001, pad_token_id=1000, vision_start_token_id=1002,
                              vision_end_token_id=1003, image_token_id=1004, video_token_id=1005),
                     tie_word_embeddings=False),
}


def make_config(size: str):
    """A Qwen2_5_VLConfig with the published hyperparameters of `size`."""
    from transformers import Qwen2_5_VLConfig

    spec = SIZES[size]
    text = dict(spec["text"], hidden_act="silu", rms_norm_eps=1e-6, use_sliding_window=False,
                max_window_layers=spec["text"]["num_hidden_layers"], attention_dropout=0.0,
                rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
                **{k: spec["ids"][k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")})
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    if head_dim // 2 != 64:  # mrope_section sums to head_dim / 2 (64 for Qwen's 128-dim heads)
        half = head_dim // 2
        t = half // 4
        text["rope_parameters"]["mrope_section"] = [t, (half - t) // 2, half - t - (half - t) // 2]
    vision = dict(spec["vision"], out_hidden_size=text["hidden_size"])
    ids = {k: spec["ids"][k] for k in ("vision_start_token_id", "vision_end_token_id", "image_token_id", "video_token_id")}
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=spec["tie_word_embeddings"], **ids)


# ------------------------------------------------------------------ counting ---------------------
@dataclass
class Counts:
    """Parameters by part, from the model's modules (works on the meta device)."""

    total: int
    text_linear: int  # decoder-layer Linear weights (q, k, v, o, gate, up, down)
    vision_linear: int  # vision tower + merger Linear weights
    lm_head: int
    embedding: int


def count_params(model) -> Counts:
    import torch.nn as nn

    text = vision = head = 0
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            n = mod.weight.numel()
            if name.endswith("lm_head"):
                head += n
            elif ".visual." in f".{name}." or name.startswith("visual"):
                vision += n
            else:
                text += n
    emb = model.get_input_embeddings().weight.numel()
    # parameters() lists a tied weight once
    return Counts(sum(p.numel() for p in model.parameters()), text, vision, head, emb)


def vision_attention_windows(config, grid: tuple[int, int, int]) -> tuple[int, int]:
    """(sum of squared window lengths for windowed blocks, for full blocks) of one video, in patches."""
    t, h, w = grid
    v = config.vision_config
    win = v.window_size // v.patch_size  # patches per window side (8 for 112 px)
    wins_h, wins_w = math.ceil(h / win), math.ceil(w / win)
    windowed = t * sum((min(win, h - i * win) * min(win, w - j * win)) ** 2 for i in range(wins_h) for j in range(wins_w))
    full = t * (h * w) ** 2
    return windowed, full


def forward_flops(config, counts: Counts, seq_len: int, logits_tokens: int, grid: tuple[int, int, int]) -> float:
    """Model FLOPs of one forward pass of one sequence with its video (matmuls and attention)."""
    text, v = config.text_config, config.vision_config
    patches = grid[0] * grid[1] * grid[2]
    flops = 2.0 * counts.text_linear * seq_len + 2.0 * counts.lm_head * logits_tokens
    flops += 2.0 * text.num_hidden_layers * text.hidden_size * seq_len * seq_len  # causal QK^T + AV
    flops += 2.0 * counts.vision_linear * patches
    windowed, full = vision_attention_windows(config, grid)
    n_full = len(v.fullatt_block_indexes)
    flops += 4.0 * v.hidden_size * (windowed * (v.depth - n_full) + full * n_full)
    return flops


# ------------------------------------------------------------------ inputs -----------------------
def prompt_inputs(config, frames: int, height: int, width: int, fps: float, text_tokens: int, seed: int = 0):
    """A PromptVideoInputs of one video prompt: random text ids around the video placeholder block."""
    import torch

    vi = C.import_video_inputs()
    v = config.vision_config
    if height % (v.patch_size * v.spatial_merge_size) or width % (v.patch_size * v.spatial_merge_size) \
            or frames % v.temporal_patch_size:
        raise SystemExit(f"frame size {height}x{width} must be multiples of 28 and frames a multiple of 2")
    grid = (frames // v.temporal_patch_size, height // v.patch_size, width // v.patch_size)
    patches = grid[0] * grid[1] * grid[2]
    video_tokens = patches // v.spatial_merge_size**2
    g = torch.Generator().manual_seed(seed)
    low = min(config.image_token_id, config.video_token_id, config.vision_start_token_id, config.text_config.bos_token_id)
    before = torch.randint(0, low, (text_tokens // 4,), generator=g).tolist()
    after = torch.randint(0, low, (text_tokens - text_tokens // 4,), generator=g).tolist()
    ids = before + [config.vision_start_token_id] + [config.video_token_id] * video_tokens + \
        [config.vision_end_token_id] + after
    dim = v.in_channels * v.temporal_patch_size * v.patch_size**2
    fields = {"pixel_values_videos": torch.randn(patches, dim, generator=g),
              "video_grid_thw": torch.tensor([list(grid)]),
              "second_per_grid_ts": torch.tensor([v.temporal_patch_size / fps])}
    return vi.PromptVideoInputs(input_ids=ids, video_fields=fields), grid


def suppress_ids(config) -> list[int]:
    return sorted({config.image_token_id, config.video_token_id, config.vision_start_token_id,
                   config.vision_end_token_id})


# ------------------------------------------------------------------ measurements -----------------
def sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 1024**3 if str(device).startswith("cuda") else float("nan")


def fmt_gib(x: float) -> str:
    return "n/a (CPU)" if math.isnan(x) else f"{x:.1f} GiB"


def matmul_peak_tflops(device, dtype, n: int, iters: int = 50) -> float:
    """Measured dense matmul throughput of this device (TFLOP/s) for `dtype`."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    sync(device)
    return 2.0 * n**3 * iters / (time.perf_counter() - t0) / 1e12


def measure_generation(model, config, prompt, generations: int, new_tokens: int, repeats: int, sequential: bool,
                       device) -> dict:
    import torch
    from transformers import GenerationConfig

    vi = C.import_video_inputs()
    text = config.text_config

    def make(copies: int, tokens: int):
        ids, fields = vi.collate_generation_fields([prompt] * copies, config.video_token_id)
        inputs = C.generate_inputs(ids, fields, text.pad_token_id, device)
        cfg = GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0, top_k=None, max_new_tokens=tokens,
                               min_new_tokens=tokens, pad_token_id=text.pad_token_id, eos_token_id=text.eos_token_id,
                               suppress_tokens=suppress_ids(config))

        def run():
            with torch.inference_mode():
                out = model.generate(**inputs, generation_config=cfg)
            sync(device)
            assert out.shape == (copies, inputs["input_ids"].shape[1] + tokens), out.shape
        return run

    batched, prefill = make(generations, new_tokens), make(generations, 1)
    single = make(1, new_tokens)
    cases = {"batched": batched, "batched_prefill": prefill}
    if sequential:
        cases["sequential"] = lambda: [single() for _ in range(generations)]
    prefill()  # warm-up
    reset_peak(device)
    times = C.interleaved(cases, repeats, warmup=0)
    med = {k: C.median(v) for k, v in times.items()}
    tokens = generations * new_tokens
    out = {"generations": generations, "new_tokens": new_tokens, "times": times, "median_s": med,
           "batched_tok_s": tokens / med["batched"], "peak_gib": peak_gib(device)}
    if sequential:
        out["sequential_tok_s"] = tokens / med["sequential"]
        out["ratio"] = med["sequential"] / med["batched"]
    return out


def measure_train_step(model, config, prompt, counts: Counts, grid, generations: int, completion_tokens: int,
                       micro_batch: int, repeats: int, optim: str, device) -> dict:
    """G sequences forward + backward (gradient checkpointing), micro-batched, then the optimizer."""
    import torch

    vi = C.import_video_inputs()
    g = torch.Generator().manual_seed(1)
    low = min(suppress_ids(config) + [config.text_config.bos_token_id])
    prompt_ids = torch.tensor(prompt.input_ids)
    seqs = torch.stack([torch.cat([prompt_ids, torch.randint(0, low, (completion_tokens,), generator=g)])
                        for _ in range(generations)]).to(device)
    advantages = torch.randn(generations, generator=g).to(device)
    model.train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=str(device).startswith("cuda")) if optim == "adamw" else None

    def step() -> float:
        total = 0.0
        for start in range(0, generations, micro_batch):
            ids = seqs[start:start + micro_batch]
            video = vi.collate_video_fields([prompt] * ids.shape[0], device=device)
            video["mm_token_type_ids"] = vi.mm_token_type_ids(ids, config.video_token_id, config.image_token_id)
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=completion_tokens + 1,
                        use_cache=False, **video)
            logits = out.logits[:, :-1, :].float()
            target = ids[:, -completion_tokens:]
            logps = torch.gather(logits.log_softmax(-1), 2, target.unsqueeze(-1)).squeeze(-1)
            loss = -(advantages[start:start + micro_batch, None] * logps).mean() * ids.shape[0] / generations
            loss.backward()
            total += float(loss.detach())
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            model.zero_grad(set_to_none=True)
        sync(device)
        return total

    reset_peak(device)
    step()  # warm-up (allocates optimizer states)
    times = [C.timed(step)[0] for _ in range(repeats)]
    seq_len = seqs.shape[1]
    flops = 3.0 * generations * forward_flops(config, counts, seq_len, completion_tokens + 1, grid)
    return {"sequences": generations, "seq_len": seq_len, "micro_batch": micro_batch, "optimizer": optim,
            "times": times, "step_s": C.median(times), "peak_gib": peak_gib(device), "model_flops": flops,
            "achieved_tflops": flops / C.median(times) / 1e12}


def build_model(config, device, dtype):
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def dry_run(sizes, args, report: "C.Report") -> dict:
    """Configs, parameter counts, FLOPs and a memory plan, on the meta device (no compute)."""
    import torch

    out = {}
    for size in sizes:
        config = make_config(size)
        model = build_model(config, "meta", torch.bfloat16)
        counts = count_params(model)
        prompt, grid = prompt_inputs(config, args.frames, *args.frame_hw, args.fps, args.text_tokens)
        seq = len(prompt.input_ids) + args.train_tokens
        flops = 3.0 * args.generations * forward_flops(config, counts, seq, args.train_tokens + 1, grid)
        gib = counts.total * 2 / 1024**3
        out[size] = {"params": counts.__dict__, "prompt_tokens": len(prompt.input_ids), "grid": grid,
                     "train_step_tflop": flops / 1e12, "weights_gib_bf16": gib,
                     "adamw_step_gib_min": gib * 4}
        report.add(f"{size}: {counts.total / 1e9:.2f} B params (text linear {counts.text_linear / 1e9:.2f} B, vision "
                   f"{counts.vision_linear / 1e9:.2f} B, lm_head {counts.lm_head / 1e9:.2f} B, embedding "
                   f"{counts.embedding / 1e9:.2f} B); prompt {len(prompt.input_ids)} tokens (video grid {grid}); "
                   f"train step {flops / 1e12:.0f} TFLOP for {args.generations} x {seq} tokens; weights "
                   f"{gib:.1f} GiB bf16, + grads + AdamW states >= {gib * 4:.1f} GiB")
    return out


def run_size(size: str, args, report: "C.Report", device, dtype, peak: float) -> dict:
    import torch

    config = make_config(size)
    t0 = time.perf_counter()
    model = build_model(config, device, dtype)
    counts = count_params(model)
    prompt, grid = prompt_inputs(config, args.frames, *args.frame_hw, args.fps, args.text_tokens)
    report.add(f"[{size}] {counts.total / 1e6:,.1f} M params, built in {time.perf_counter() - t0:.1f} s; prompt "
               f"{len(prompt.input_ids)} tokens, video grid {grid}")
    res: dict = {"params": counts.__dict__, "prompt_tokens": len(prompt.input_ids), "grid": grid}
    try:
        gen = measure_generation(model, config, prompt, args.generations, args.new_tokens, args.repeats,
                                 not args.no_sequential, device)
        res["generation"] = gen
        line = (f"[{size}] generation G={args.generations} x {args.new_tokens} tokens: batched "
                f"{C.fmt_s(gen['median_s']['batched'])} ({gen['batched_tok_s']:.0f} tok/s), prefill "
                f"{C.fmt_s(gen['median_s']['batched_prefill'])}, peak {fmt_gib(gen['peak_gib'])}")
        if "ratio" in gen:
            line += f"; sequential {C.fmt_s(gen['median_s']['sequential'])} ({gen['sequential_tok_s']:.0f} tok/s)"
        report.add(line)
    except torch.OutOfMemoryError as exc:
        res["generation"] = {"error": f"out of memory: {exc}"[:300]}
        report.add(f"[{size}] generation: OUT OF MEMORY")
    reset_peak(device)
    for optim in ([args.optim, "none"] if args.optim == "adamw" else [args.optim]):
        gc.collect()  # free what a failed attempt left (optimizer states, gradients) before measuring again
        reset_peak(device)
        try:
            tr = measure_train_step(model, config, prompt, counts, grid, args.generations, args.train_tokens,
                                    args.micro_batch, args.repeats, optim, device)
        except torch.OutOfMemoryError as exc:
            res.setdefault("train_errors", []).append(f"{optim}: out of memory")
            report.add(f"[{size}] train step with optimizer {optim}: OUT OF MEMORY ({str(exc)[:120]})")
            model.zero_grad(set_to_none=True)
            continue
        tr["mfu"] = tr["achieved_tflops"] / peak
        res["train"] = tr
        report.add(f"[{size}] train step ({args.generations} x {tr['seq_len']} tokens, micro-batch {args.micro_batch}, "
                   f"gradient checkpointing, optimizer {optim}): {C.spread(tr['times'])}, peak {fmt_gib(tr['peak_gib'])}, "
                   f"{tr['achieved_tflops']:.3g} TFLOP/s = MFU {100 * tr['mfu']:.1f}%")
        break
    del model
    reset_peak(device)
    return res


def parse_args(argv=None) -> argparse.Namespace:
    p = C.base_parser(__doc__)
    p.add_argument("--sizes", default="3b", help="comma-separated: 3b, 7b, cpu-tiny (default 3b)")
    p.add_argument("--dry-run", action="store_true", help="print configs, parameters, FLOPs and memory; no compute")
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--frame-size", default="392x392", help="HxW, multiples of 28 (392x392 = 196*28*28 pixels)")
    p.add_argument("--fps", type=float, default=0.5, help="sampling fps (16 frames of a 32 s video)")
    p.add_argument("--text-tokens", type=int, default=80, help="text tokens of the prompt around the video")
    p.add_argument("--new-tokens", type=int, default=None, help="generated tokens (default 64 quick, 256 full)")
    p.add_argument("--train-tokens", type=int, default=None, help="completion tokens in the step (default 256 quick, 512 full)")
    p.add_argument("--micro-batch", type=int, default=2, help="sequences per forward/backward")
    p.add_argument("--optim", default="adamw", choices=("adamw", "none"))
    p.add_argument("--no-sequential", action="store_true", help="skip the sequential-generation baseline")
    p.add_argument("--device", default="auto")
    p.add_argument("--peak-n", type=int, default=None, help="matmul size of the peak measurement")
    a = p.parse_args(argv)
    a.sizes = [s.strip() for s in a.sizes.split(",") if s.strip()]
    unknown = [s for s in a.sizes if s not in SIZES]
    if unknown:
        p.error(f"unknown size(s) {unknown}; choose from {sorted(SIZES)}")
    try:
        a.frame_hw = tuple(int(x) for x in a.frame_size.lower().split("x"))
        assert len(a.frame_hw) == 2
    except (ValueError, AssertionError):
        p.error(f"--frame-size must look like 392x392, got {a.frame_size!r}")
    a.new_tokens = a.new_tokens or (64 if a.quick else 256)
    a.train_tokens = a.train_tokens or (256 if a.quick else 512)
    a.repeats = C.repeats_of(a, 2, 3)
    if a.micro_batch < 1 or a.generations < 1:
        p.error("--micro-batch and --generations must be >= 1")
    return a


def main(argv=None) -> int:
    import torch

    a = parse_args(argv)
    report = C.Report("GPU step: random-weight Qwen2.5-VL at real sizes")
    C.header(report, a, f", sizes {a.sizes}")
    if a.dry_run:
        report.data = dry_run(a.sizes, a, report)
        return report.finish(a.json)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    gpu = device.startswith("cuda")
    if not gpu and any(s != "cpu-tiny" for s in a.sizes):
        report.add("no GPU here: real sizes need one (use --dry-run, or --sizes cpu-tiny to check the code path)")
        return 2
    C.set_threads(a.threads if not gpu else 0)
    dtype = torch.bfloat16 if gpu else torch.float32
    peak = matmul_peak_tflops(device, dtype, a.peak_n or (8192 if gpu else 512))
    report.add(f"measured {'bf16' if gpu else 'fp32'} matmul peak: {peak:.3g} TFLOP/s on {device}")
    report.data = {"device": device, "dtype": str(dtype), "peak_tflops": peak, "sizes": {}}
    for size in a.sizes:
        report.data["sizes"][size] = res = run_size(size, a, report, device, dtype, peak)
        gen, tr = res.get("generation", {}), res.get("train")
        if "ratio" in gen:
            report.ratio(f"gpu_{size}_rollout_batched_vs_sequential", gen["ratio"], 4.0)
        if "batched_tok_s" in gen:
            report.ratio(f"gpu_{size}_generation_tok_s", gen["batched_tok_s"], unit=" tok/s")
        if tr:
            report.ratio(f"gpu_{size}_train_step_s", tr["step_s"], unit=" s", note=f"peak {fmt_gib(tr['peak_gib'])}")
            report.ratio(f"gpu_{size}_train_mfu", 100 * tr["mfu"], unit="%",
                         note=f"optimizer {tr['optimizer']}, vs measured peak {peak:.3g} TFLOP/s")
    return report.finish(a.json)


if __name__ == "__main__":
    sys.exit(main())
