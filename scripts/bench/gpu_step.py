#!/usr/bin/env python
"""GPU benchmark at real model sizes: a random-weight Qwen2.5-VL shaped like the published 3B and 7B
(configs built from their published hyperparameters in _model_shapes.py, nothing downloaded), bf16, sdpa
attention, one video prompt of 16 frames at 196*28*28 pixels. Measures, for one group of G=8 completions:

- generation: the trainer's default path (one shared prefill of the prompt, `shared_prefill.py`, then one
  batched decode of the G completions), TRL's plain batched `generate` (the prompt and its video G times)
  and optionally G sequential calls (the original design): times, tokens/s, peak memory;
- the loss pass: forward + backward of the G completions with gradient checkpointing, TRL's way (every row
  runs the prompt and its video) and shared-prefix (`shared_prefix.py`: the prompt once, the completions
  packed after it), at each `--train-tokens` length: time, peak memory, MFU;
- the whole step of one group as the trainer runs it by default: shared-prefill generation + shared-prefix
  loss pass (+ an AdamW step with `--optim adamw`), and its MFU.

MFU = model FLOPs / time / peak, reported against BOTH the bf16 matmul peak measured in the same process
(8192^2 matmuls) and the datasheet's dense bf16 peak of the GPU (_model_shapes.DATASHEET_BF16_TFLOPS).
Model FLOPs are 3 x the forward FLOPs for a loss pass (the recomputation of gradient checkpointing not
counted), the forward FLOPs for generation; each figure is named by what it covers (generation, loss pass,
step). The shared-prefix path's attention is counted as the trainer computes it with sdpa (block by block).

    # on the GPU machine (device tool); needs only torch + transformers (scripts/bench/gpu_check.sh runs both sizes)
    python scripts/bench/gpu_step.py --sizes 3b --quick --json $OUT/gpu_3b.json
    python scripts/bench/gpu_step.py --sizes 7b --new-tokens 512 --train-tokens 512,2048 --optim none
    # here, without a GPU
    python scripts/bench/gpu_step.py --dry-run --sizes 3b,7b --train-tokens 512,2048   # FLOPs, memory plan
    python scripts/bench/gpu_step.py --sizes cpu-tiny --quick       # the whole code path on CPU, tiny config

Inputs are built with the project's own helpers (versavid_r1.trainer.video_inputs, shared_prefix,
shared_prefill, loaded from their files when TRL is missing) around synthetic tensors of the right shapes:
with random weights the pixel values do not matter, only the shapes do (16 frames of 392x392 -> video grid
8x28x28 -> 1568 video tokens). An out-of-memory measurement (e.g. AdamW's states of the 7B) is reported,
not hidden.
"""
from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

C.add_repo_paths()

from _model_shapes import (  # noqa: E402  (re-exported: tests and callers use gpu_step.make_config, ...)
    SIZES, Counts, count_params, datasheet_bf16_tflops, forward_flops, generation_flops, loss_pass_flops, make_config,
)

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


def generation_config(config, tokens: int):
    from transformers import GenerationConfig

    text = config.text_config
    return GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0, top_k=None, max_new_tokens=tokens,
                            min_new_tokens=tokens, pad_token_id=text.pad_token_id, eos_token_id=text.eos_token_id,
                            suppress_tokens=suppress_ids(config))


def measure_generation(model, config, prompt, generations: int, new_tokens: int, repeats: int, sequential: bool,
                       device) -> dict:
    """G completions of the prompt: the trainer's default path (one shared prefill, `shared_prefill.py`), TRL's
    plain batched `generate` over G copies and, optionally, G sequential calls (the original design)."""
    import torch

    vi = C.import_trainer_module("video_inputs")
    shared_prefill = C.import_trainer_module("shared_prefill")

    def inputs_of(copies: int):
        ids, fields = vi.collate_generation_fields([prompt] * copies, config.video_token_id)
        return C.generate_inputs(ids, fields, config.text_config.pad_token_id, device)

    def check(out, width, copies, tokens):
        sync(device)
        assert out.shape == (copies, width + tokens), out.shape

    def batched(copies: int, tokens: int):
        inputs, cfg = inputs_of(copies), generation_config(config, tokens)

        def run():
            with torch.inference_mode():
                out = model.generate(**inputs, generation_config=cfg)
            check(out, inputs["input_ids"].shape[1], copies, tokens)
        return run

    def shared(tokens: int):
        inputs, cfg = inputs_of(1), generation_config(config, tokens)

        def run():
            with torch.inference_mode():
                out, width = shared_prefill.generate_from_padded(model, inputs, generations, cfg)
            check(out, width, generations, tokens)
        return run

    cases = {"shared": shared(new_tokens), "shared_prefill": shared(1), "batched": batched(generations, new_tokens),
             "batched_prefill": batched(generations, 1)}
    if sequential:
        single = batched(1, new_tokens)
        cases["sequential"] = lambda: [single() for _ in range(generations)]
    cases["shared_prefill"]()  # warm-up
    reset_peak(device)
    times = C.interleaved(cases, repeats, warmup=0)
    med = {k: C.median(v) for k, v in times.items()}
    tokens = generations * new_tokens
    out = {"generations": generations, "new_tokens": new_tokens, "times": times, "median_s": med,
           "shared_tok_s": tokens / med["shared"], "batched_tok_s": tokens / med["batched"],
           "shared_vs_batched": med["batched"] / med["shared"], "peak_gib": peak_gib(device)}
    if sequential:
        out["sequential_tok_s"] = tokens / med["sequential"]
        out["ratio"] = med["sequential"] / med["shared"]
    return out


def mfu(flops: float, seconds: float, measured_peak: float, datasheet_peak) -> dict:
    """Achieved TFLOP/s and model FLOP utilisation against the measured matmul peak and the datasheet peak."""
    achieved = flops / seconds / 1e12
    return {"model_flops": flops, "achieved_tflops": achieved, "mfu_measured_peak": achieved / measured_peak,
            "mfu_datasheet_peak": achieved / datasheet_peak if datasheet_peak else None}


def measure_loss_pass(model, config, prompt, counts: Counts, grid, generations: int, completion: int, path: str,
                      repeats: int, device, peaks: tuple, optim: str = "none") -> dict:
    """Forward + backward of one micro-batch of G completions (gradient checkpointing) on `path` (plain or
    shared): time, peak memory, MFU. With `optim` adamw, afterwards an AdamW step is timed on its own (the whole
    step's last part); its states are allocated after the loss pass's peak memory is read."""
    import torch

    import _loss_forward as lf

    ids, mask = lf.completion_batch(config, prompt, generations, completion, device)
    advantages = torch.randn(generations, generator=torch.Generator().manual_seed(2)).to(device)
    model.train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False

    def loss_pass() -> None:
        lf.loss_pass(model, config, prompt, ids, mask, completion, path, advantages)
        sync(device)

    reset_peak(device)
    times = []
    for i in range(repeats + 1):  # the first pass is a warm-up
        seconds = C.timed(loss_pass)[0]
        model.zero_grad(set_to_none=True)
        if i:
            times.append(seconds)
    prompt_len = len(prompt.input_ids)
    forward = loss_pass_flops(config, counts, prompt_len, completion, generations, grid, path == "shared")
    out = {"path": path, "sequences": generations, "completion": completion, "prompt_tokens": prompt_len,
           "times": times, "loss_pass_s": C.median(times), "peak_gib": peak_gib(device),
           **mfu(3.0 * forward, C.median(times), *peaks)}
    if path == "shared":
        out["model_flops_dense_mask"] = 3.0 * loss_pass_flops(config, counts, prompt_len, completion, generations,
                                                              grid, True, attention="dense")
    if optim == "adamw":
        out["optimizer"] = measure_adamw(model, loss_pass, repeats, device)
    return out


def measure_adamw(model, loss_pass, repeats: int, device) -> dict:
    """Time of an AdamW step on the gradients of one loss pass (its states allocated by a first step)."""
    import torch

    opt = None
    try:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=str(device).startswith("cuda"))
        times = []
        for i in range(repeats + 1):
            loss_pass()
            seconds = C.timed(lambda: (opt.step(), sync(device)))[0]
            model.zero_grad(set_to_none=True)
            if i:
                times.append(seconds)
        return {"step_s": C.median(times), "times": times, "peak_gib": peak_gib(device)}
    except torch.OutOfMemoryError as exc:
        return {"error": f"out of memory: {str(exc)[:200]}"}
    finally:
        del opt
        model.zero_grad(set_to_none=True)
        gc.collect()
        reset_peak(device)


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
        p, g = len(prompt.input_ids), args.generations
        gib = counts.total * 2 / 1024**3
        out[size] = {"params": counts.__dict__, "prompt_tokens": p, "grid": grid, "weights_gib_bf16": gib,
                     "adamw_step_gib_min": gib * 4, "loss_pass_tflop": {}}
        report.add(f"{size}: {counts.total / 1e9:.2f} B params (text linear {counts.text_linear / 1e9:.2f} B, vision "
                   f"{counts.vision_linear / 1e9:.2f} B, lm_head {counts.lm_head / 1e9:.2f} B, embedding "
                   f"{counts.embedding / 1e9:.2f} B); prompt {p} tokens (video grid {grid}); weights "
                   f"{gib:.1f} GiB bf16, + grads + AdamW states >= {gib * 4:.1f} GiB")
        for c in args.train_tokens:
            plain = 3.0 * loss_pass_flops(config, counts, p, c, g, grid, False)
            shared = 3.0 * loss_pass_flops(config, counts, p, c, g, grid, True)
            dense = 3.0 * loss_pass_flops(config, counts, p, c, g, grid, True, attention="dense")
            out[size]["loss_pass_tflop"][c] = {"plain": plain / 1e12, "shared": shared / 1e12,
                                               "shared_dense_mask": dense / 1e12}
            report.add(f"{size}: loss pass G={g} x {c} tokens: plain {plain / 1e12:.0f} TFLOP, shared-prefix "
                       f"{shared / 1e12:.0f} TFLOP ({plain / shared:.2f}x fewer; with the dense mask, as eager attention "
                       f"runs it, {dense / 1e12:.0f} TFLOP, {plain / dense:.2f}x)")
    return out


def run_size(size: str, args, report: "C.Report", device, dtype, peaks: tuple) -> dict:
    import torch

    config = make_config(size)
    t0 = time.perf_counter()
    model = build_model(config, device, dtype)
    counts = count_params(model)
    prompt, grid = prompt_inputs(config, args.frames, *args.frame_hw, args.fps, args.text_tokens)
    report.add(f"[{size}] {counts.total / 1e6:,.1f} M params, built in {time.perf_counter() - t0:.1f} s; prompt "
               f"{len(prompt.input_ids)} tokens, video grid {grid}")
    res: dict = {"params": counts.__dict__, "prompt_tokens": len(prompt.input_ids), "grid": grid, "loss_pass": {}}
    try:
        gen = measure_generation(model, config, prompt, args.generations, args.new_tokens, args.repeats,
                                 not args.no_sequential, device)
        gen.update(mfu(generation_flops(config, counts, len(prompt.input_ids), args.new_tokens, args.generations,
                                        grid), gen["median_s"]["shared"], *peaks))
        res["generation"] = gen
        med = gen["median_s"]
        line = (f"[{size}] generation G={args.generations} x {args.new_tokens} tokens: shared prefill (the default) "
                f"{C.fmt_s(med['shared'])} ({gen['shared_tok_s']:.0f} tok/s, prefill {C.fmt_s(med['shared_prefill'])}); "
                f"TRL's batched {C.fmt_s(med['batched'])} (prefill {C.fmt_s(med['batched_prefill'])}); "
                f"peak {fmt_gib(gen['peak_gib'])}")
        if "ratio" in gen:
            line += f"; sequential {C.fmt_s(med['sequential'])} ({gen['sequential_tok_s']:.0f} tok/s)"
        report.add(line)
    except torch.OutOfMemoryError as exc:
        res["generation"] = {"error": f"out of memory: {exc}"[:300]}
        report.add(f"[{size}] generation: OUT OF MEMORY")
    for c in args.train_tokens:
        for path in ("plain", "shared"):
            optim = args.optim if path == "shared" and c == args.new_tokens else "none"
            gc.collect()  # free what a previous measurement left
            model.zero_grad(set_to_none=True)
            try:
                lp = measure_loss_pass(model, config, prompt, counts, grid, args.generations, c, path, args.repeats,
                                       device, peaks, optim)
            except torch.OutOfMemoryError as exc:
                res["loss_pass"].setdefault(c, {})[path] = {"error": "out of memory"}
                report.add(f"[{size}] loss pass {path}, {c} tokens: OUT OF MEMORY ({str(exc)[:100]})")
                model.zero_grad(set_to_none=True)
                continue
            res["loss_pass"].setdefault(c, {})[path] = lp
            report.add(f"[{size}] loss pass {path:<6} G={args.generations} x {c} tokens (forward + backward, gradient "
                       f"checkpointing): {C.spread(lp['times'])}, peak {fmt_gib(lp['peak_gib'])}, "
                       f"{lp['achieved_tflops']:.3g} TFLOP/s = MFU {_pct(lp['mfu_measured_peak'])} of the measured peak, "
                       f"{_pct(lp['mfu_datasheet_peak'])} of the datasheet's" + _optimizer_note(lp))
    res["step"] = whole_step(res, args, peaks)
    if res["step"]:
        st = res["step"]
        report.add(f"[{size}] whole step ({st['covers']}): {C.fmt_s(st['step_s'])}, MFU "
                   f"{_pct(st['mfu_measured_peak'])} of the measured peak, {_pct(st['mfu_datasheet_peak'])} of the "
                   "datasheet's")
    del model
    reset_peak(device)
    return res


def whole_step(res: dict, args, peaks: tuple) -> dict:
    """A GRPO step of one group as the trainer runs it by default: the shared-prefill generation of
    `--new-tokens`, the shared-prefix loss pass of the same length and (if measured) the optimizer step."""
    gen = res.get("generation", {})
    loss = res["loss_pass"].get(args.new_tokens, {}).get("shared", {})
    if "median_s" not in gen or "loss_pass_s" not in loss:
        return {}
    adamw = loss.get("optimizer", {}).get("step_s")
    seconds = gen["median_s"]["shared"] + loss["loss_pass_s"] + (adamw or 0.0)
    covers = "generation + loss pass" + (" + AdamW step" if adamw else ", optimizer not included")
    return {"covers": covers, "step_s": seconds, **mfu(gen["model_flops"] + loss["model_flops"], seconds, *peaks)}


def _optimizer_note(lp: dict) -> str:
    opt = lp.get("optimizer")
    if not opt:
        return ""
    return f"; AdamW step {C.fmt_s(opt['step_s'])}" if "step_s" in opt else f"; AdamW step: {opt['error'][:60]}"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def parse_args(argv=None) -> argparse.Namespace:
    p = C.base_parser(__doc__)
    p.add_argument("--sizes", default="3b", help="comma-separated: 3b, 7b, cpu-tiny (default 3b)")
    p.add_argument("--dry-run", action="store_true", help="print configs, parameters, FLOPs and memory; no compute")
    p.add_argument("--generations", type=int, default=8, help="G: completions per prompt = rows of the micro-batch")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--frame-size", default="392x392", help="HxW, multiples of 28 (392x392 = 196*28*28 pixels)")
    p.add_argument("--fps", type=float, default=0.5, help="sampling fps (16 frames of a 32 s video)")
    p.add_argument("--text-tokens", type=int, default=80, help="text tokens of the prompt around the video")
    p.add_argument("--new-tokens", type=int, default=None, help="generated tokens (default 64 quick, 256 full)")
    p.add_argument("--train-tokens", default=None,
                   help="comma-separated completion lengths of the loss pass (default: the --new-tokens value)")
    p.add_argument("--optim", default="adamw", choices=("adamw", "none"),
                   help="time an AdamW step after the shared loss pass (the whole step's last part)")
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
    try:
        a.train_tokens = [int(x) for x in (a.train_tokens or str(a.new_tokens)).split(",") if x.strip()]
    except ValueError:
        p.error(f"--train-tokens must be comma-separated integers, got {a.train_tokens!r}")
    a.repeats = C.repeats_of(a, 2, 3)
    if a.generations < 2 or min(a.train_tokens) < 1:
        p.error("--generations must be >= 2 (rows that share a prompt) and --train-tokens >= 1")
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
    name = torch.cuda.get_device_name(0) if gpu else "CPU"
    datasheet = datasheet_bf16_tflops(name) if gpu else None
    report.add(f"measured {'bf16' if gpu else 'fp32'} matmul peak: {peak:.3g} TFLOP/s on {device} ({name}); "
               f"datasheet dense bf16 peak: {f'{datasheet:g} TFLOP/s' if datasheet else 'unknown for this device'}")
    report.data = {"device": device, "device_name": name, "dtype": str(dtype), "peak_tflops": peak,
                   "datasheet_tflops": datasheet, "sizes": {},
                   "trainer_modules": {m: C.import_trainer_module(m).__name__
                                       for m in ("video_inputs", "shared_prefix", "shared_prefill")}}
    for size in a.sizes:
        report.data["sizes"][size] = res = run_size(size, a, report, device, dtype, (peak, datasheet))
        add_ratios(report, size, res)
    return report.finish(a.json)


def add_ratios(report: "C.Report", size: str, res: dict) -> None:
    gen = res.get("generation", {})
    if "ratio" in gen:
        report.ratio(f"gpu_{size}_rollout_shared_vs_sequential", gen["ratio"], 4.0)
    if "shared_vs_batched" in gen:
        report.ratio(f"gpu_{size}_rollout_shared_vs_batched", gen["shared_vs_batched"],
                     note=f"{gen['shared_tok_s']:.0f} vs {gen['batched_tok_s']:.0f} tok/s")
    for c, paths in res["loss_pass"].items():
        plain, shared = paths.get("plain", {}), paths.get("shared", {})
        if "loss_pass_s" in plain and "loss_pass_s" in shared:
            report.ratio(f"gpu_{size}_loss_pass_{c}_shared_vs_plain", plain["loss_pass_s"] / shared["loss_pass_s"],
                         note=f"peak {fmt_gib(shared['peak_gib'])} vs {fmt_gib(plain['peak_gib'])}")
        for path, lp in paths.items():
            if "mfu_measured_peak" in lp:
                note = "" if lp["mfu_datasheet_peak"] is None else f"{_pct(lp['mfu_datasheet_peak'])} of the datasheet peak"
                report.ratio(f"gpu_{size}_loss_pass_{c}_{path}_mfu", 100 * lp["mfu_measured_peak"], unit="%",
                             note=f"of the measured matmul peak; {note}".rstrip("; "))
    step = res.get("step")
    if step:
        note = f"{step['covers']}; {_pct(step['mfu_datasheet_peak'])} of the datasheet peak"
        report.ratio(f"gpu_{size}_step_mfu", 100 * step["mfu_measured_peak"], unit="%", note=note)


if __name__ == "__main__":
    sys.exit(main())
