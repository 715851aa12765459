#!/usr/bin/env python
"""Loss pass: forward + backward of one GRPO micro-batch, the trainer's shared-prefix log-probs (this project)
vs TRL's plain path (every completion runs the prompt and its video), same model, same inputs, one process.

    .venv/bin/python scripts/bench/loss_pass.py --quick       # 2 repeats
    .venv/bin/python scripts/bench/loss_pass.py               # 5 repeats
    .venv/bin/python scripts/bench/loss_pass.py --quick --families qwen3_vl   # one family

The micro-batch is one group: G = 8 completions of 256 tokens (random ordinary tokens, no EOS) of one video
prompt built by the project's own path (an MCQA row on a 30 s mp4 -> load_video, 16 frames at 128..196 x 28x28
px -> make_conversation -> build_prompt_inputs: about 1,670 tokens), on the `small` random Qwen2.5-VL (3.8 M
parameters) with sdpa attention in fp32, and the same on each other family of `--families` (Qwen3-VL,
Qwen3-VL-MoE, Qwen3.5 by default; 16 px patches: 128..196 x 32x32 px, the same tokens per frame group, plus their
text timestamps). Qwen3.5's linear-attention layers cannot take the shared layout: its line reports the
fallback (both sides run the plain path). Both sides run the trainer's real `_compute_loss` (TRL's GRPO loss,
`loss_type` grpo) and `backward()`; only `share_prompt_loss` differs. Times are medians of interleaved runs.

Peak memory is measured for each side in its own fresh child process (the same set-up, then one pass): the
kernel's resident-set high-water mark (VmHWM, reset through /proc/self/clear_refs right before the pass) minus
the resident set before it, i.e. what the pass itself adds at its peak. Python's tracemalloc cannot see torch's
CPU allocations.

It also prints the FLOP ratio expected at the paper's shapes (7B, a 1,650-token 16-frame prompt, G = 8,
completions of 512 and 2,048 tokens), counted by scripts/bench/_model_shapes.py as the trainer computes the
shared path with sdpa (block by block) and, for comparison, with the dense mask (eager attention).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

C.add_repo_paths()


FAMILIES = ("qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "qwen3_5")


def build(size: str, generations: int, completion: int, nframes: int = 16, arch: str = "qwen2_5_vl"):
    """(trainer, model, inputs of one micro-batch as TRL's `_compute_loss` takes them)."""
    import torch
    from trl import GRPOConfig

    from rollout import build_case
    from versavid_r1.data import VideoConfig
    from versavid_r1.trainer import Qwen25VLGRPOTrainer, rows_to_dataset

    model, processor, prompt, _ = build_case(size, nframes, arch=arch)
    args = GRPOConfig(output_dir=str(C.cache_dir("loss-pass-out")), per_device_train_batch_size=generations,
                      num_generations=generations, max_completion_length=completion, beta=0.0, loss_type="grpo",
                      use_cpu=True, bf16=False, report_to="none", save_strategy="no", dataloader_pin_memory=False,
                      disable_tqdm=True, log_completions=False)
    row = {"problem": "q", "solution": "<answer>A</answer>", "problem_type": "MCQA", "video": "unused.mp4"}
    trainer = Qwen25VLGRPOTrainer(model=model, reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                                  args=args, train_dataset=rows_to_dataset([row]), processing_class=processor,
                                  video_config=VideoConfig(nframes=nframes, image_patch_size=16 if "qwen3" in arch
                                                           else 14), prefetch_videos=False)
    model = trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train(), which is not run here
    g = torch.Generator().manual_seed(0)
    low = min(processor.tokenizer.all_special_ids)
    prompt_ids = torch.tensor([prompt.input_ids] * generations)
    inputs = {
        "prompt_ids": prompt_ids, "prompt_mask": torch.ones_like(prompt_ids),
        "completion_ids": torch.randint(10, low, (generations, completion), generator=g),
        "completion_mask": torch.ones(generations, completion, dtype=torch.long),
        "advantages": torch.randn(generations, generator=g), "num_items_in_batch": torch.tensor(generations * completion),
        "videos": [prompt] * generations,  # one object per prompt, as the trainer's batches carry it
    }
    return trainer, model, inputs


def make_pass(trainer, model, inputs, shared: bool):
    def run() -> float:
        trainer.share_prompt_loss = shared
        loss = trainer._compute_loss(model, inputs)
        loss.backward()
        model.zero_grad(set_to_none=True)
        return float(loss.detach())
    return run


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child_peak(size: str, generations: int, completion: int, path: str) -> dict:
    """In a fresh child process: what the first pass on `path` adds to the resident set at its peak (MiB).
    No warm-up pass: the allocator would keep part of its memory and hide it from the next pass's growth."""
    import gc

    trainer, model, inputs = build(size, generations, completion)
    run = make_pass(trainer, model, inputs, path == "shared")
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
    before = _rss_kib("VmRSS")
    run()
    peak = _rss_kib("VmHWM")
    return {"path": path, "baseline_mib": before / 1024, "peak_mib": peak / 1024, "added_mib": (peak - before) / 1024,
            "fallbacks": sorted(trainer._shared_prefix_fallbacks)}


def mask_peak(prompt: int, generations: int, completion: int) -> dict:
    """What packing one group and building its sdpa attention mask add to the resident set (MiB), no model: the
    part of the shared forward that depends on the packed length L = prompt - 1 + G x completion."""
    import gc

    import torch

    sp = C.import_trainer_module("shared_prefix")
    groups = [sp.PrefixGroup(tuple(range(generations)), prompt, (completion,) * generations)]
    ids = torch.randint(10, 100, (generations, prompt + completion))
    positions = torch.arange(prompt + completion).expand(3, 1, prompt + completion)
    text_config = type("TextConfig", (), {"_attn_implementation": "sdpa", "layer_types": ["full_attention"]})()
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = _rss_kib("VmRSS")
    packed = sp.pack(groups, ids, positions, completion, 0)
    mask = sp.mask_mapping(packed, text_config, torch.float32)
    peak, held = _rss_kib("VmHWM"), _rss_kib("VmRSS")
    del mask
    return {"packed_length": int(packed.input_ids.shape[1]), "peak_added_mib": (peak - before) / 1024,
            "held_mib": (held - before) / 1024}


def measure_peaks(size: str, generations: int, completion: int, threads: int) -> dict:
    out = {}
    for path in ("plain", "shared"):
        cmd = [sys.executable, __file__, "--child-peak", path, "--size", size, "--generations", str(generations),
               "--completion", str(completion), "--threads", str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env={**os.environ})
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("PEAK ")]
        if proc.returncode != 0 or not line:
            raise RuntimeError(f"peak-memory child for {path} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        out[path] = json.loads(line[-1][5:])
    return out


def paper_flops() -> dict:
    """Expected FLOP ratios of the loss pass at the paper's shapes (7B, G = 8, 16 frames at 196*28*28 px)."""
    import torch

    import gpu_step as G
    from _model_shapes import count_params, loss_pass_flops, make_config, vision_flops

    config = make_config("7b")
    counts = count_params(G.build_model(config, "meta", torch.bfloat16))
    prompt, grid = G.prompt_inputs(config, 16, 392, 392, 0.5, 80)
    p = len(prompt.input_ids)
    out = {"prompt_tokens": p, "grid": grid}
    for c in (512, 2048):
        plain = loss_pass_flops(config, counts, p, c, 8, grid, False)
        executed = loss_pass_flops(config, counts, p, c, 8, grid, True)
        dense = loss_pass_flops(config, counts, p, c, 8, grid, True, attention="dense")
        out[c] = {"plain_tflop": plain / 1e12, "shared_tflop": executed / 1e12, "shared_dense_tflop": dense / 1e12,
                  "ratio": plain / executed, "ratio_dense_mask": plain / dense,
                  "plain_vision_share": 8 * vision_flops(config, counts, grid) / plain}
    return out


def compare_family(report, a, arch: str) -> tuple[dict, dict]:
    """Time both paths on `arch` (interleaved); (timings, figures). Stops when the paths disagree on the loss or the
    shared path falls back for a reason other than the family's own (Qwen3.5's linear attention)."""
    trainer, model, inputs = build(a.size, a.generations, a.completion, arch=arch)
    prompt = inputs["videos"][0]
    report.add(f"{arch}: model {a.size} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params, "
               f"{C.torch_threads()} torch thread(s)); prompt {len(prompt.input_ids)} tokens (video grid "
               f"{prompt.video_fields['video_grid_thw'].tolist()}); G={a.generations} x {a.completion} tokens")
    cases = {"plain": make_pass(trainer, model, inputs, False), "shared": make_pass(trainer, model, inputs, True)}
    losses = {k: fn() for k, fn in cases.items()}
    if abs(losses["plain"] - losses["shared"]) > 1e-4 * max(1.0, abs(losses["plain"])):
        raise SystemExit(f"{arch}: the two paths disagree on the loss: {losses}")
    fallbacks = sorted(trainer._shared_prefix_fallbacks)
    if fallbacks and not all("linear-attention" in f for f in fallbacks):
        raise SystemExit(f"{arch}: the shared path fell back: {fallbacks}")
    times = C.interleaved(cases, C.repeats_of(a, 2, 5), warmup=0)
    med = {k: C.median(v) for k, v in times.items()}
    report.add(f"{arch}: plain (TRL, every row runs the prompt and its video): {C.spread(times['plain'])}")
    report.add(f"{arch}: shared prefix (the prompt once, completions packed): {C.spread(times['shared'])}"
               + (f" -- falls back: {fallbacks[0]}" if fallbacks else ""))
    figures = {"prompt_tokens": len(prompt.input_ids), "times": times, "median_s": med, "losses": losses,
               "fallbacks": fallbacks}
    return med, figures


def main(argv=None) -> int:
    p = C.base_parser(__doc__)
    p.add_argument("--size", default="small", choices=sorted(C.MODEL_SIZES))
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--completion", type=int, default=256, help="completion tokens per row")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help="model families to compare, comma-separated (tiny builders' archs; default: %(default)s)")
    p.add_argument("--no-memory", action="store_true", help="skip the per-path peak-memory child processes")
    p.add_argument("--child-peak", choices=("plain", "shared"),
                   help="only measure the peak memory one pass of this path adds (in this process) and print it as "
                        "PEAK {json}; e.g. --child-peak shared --completion 2048 for the paper's lengths")
    p.add_argument("--mask-peak", type=int, default=None, metavar="PROMPT_TOKENS",
                   help="only measure what packing a group of this prompt length (with --generations x --completion "
                        "tokens) and building its sdpa mask add to memory, without a model; print MASK {json}")
    a = p.parse_args(argv)
    C.set_threads(a.threads)
    if a.mask_peak:
        print("MASK " + json.dumps(mask_peak(a.mask_peak, a.generations, a.completion)), flush=True)
        return 0
    if a.child_peak:
        print("PEAK " + json.dumps(child_peak(a.size, a.generations, a.completion, a.child_peak)), flush=True)
        return 0
    families = [f.strip() for f in a.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES) - {"qwen2_vl"})
    if unknown:
        raise SystemExit(f"--families: unknown {unknown}; choose from {FAMILIES + ('qwen2_vl',)}")
    report = C.Report("Loss pass: shared-prefix log-probs vs TRL's plain path")
    C.header(report, a)
    report.data = {"size": a.size, "generations": a.generations, "completion": a.completion, "families": {}}
    medians = {}
    for arch in families:
        medians[arch], report.data["families"][arch] = compare_family(report, a, arch)
    if "qwen2_5_vl" in medians and not a.no_memory:  # the paper's family: memory and FLOPs at the paper's shapes
        peaks = measure_peaks(a.size, a.generations, a.completion, a.threads)
        report.data["memory"] = peaks
        for path in ("plain", "shared"):
            report.add(f"peak memory added by one {path} pass: {peaks[path]['added_mib']:.0f} MiB "
                       f"(resident set {peaks[path]['baseline_mib']:.0f} -> {peaks[path]['peak_mib']:.0f} MiB)")
        report.ratio("loss_pass_peak_memory_shared_vs_plain",
                     peaks["shared"]["added_mib"] / peaks["plain"]["added_mib"], 1.0, higher_is_better=False,
                     note=f"{peaks['shared']['added_mib']:.0f} vs {peaks['plain']['added_mib']:.0f} MiB")
    if "qwen2_5_vl" in medians:
        flops = paper_flops()
        report.data["paper_flops"] = flops
        for c in (512, 2048):
            f = flops[c]
            report.add(f"paper shapes (7B, prompt {flops['prompt_tokens']} tokens, G=8 x {c}): plain "
                       f"{f['plain_tflop']:.0f} TFLOP forward ({100 * f['plain_vision_share']:.0f}% of it the vision "
                       f"tower), shared {f['shared_tflop']:.0f} TFLOP (the block mask computed block by block, as "
                       f"with sdpa; {f['shared_dense_tflop']:.0f} TFLOP as eager attention computes the dense mask)")
            report.ratio(f"paper_flops_{c}_plain_vs_shared", f["ratio"],
                         note=f"{f['ratio_dense_mask']:.2f}x with the dense mask (eager attention)")
    for arch in [f for f in families if f != "qwen2_5_vl"]:
        fallback = report.data["families"][arch]["fallbacks"]
        report.ratio(f"loss_pass_shared_vs_plain_{arch}", medians[arch]["plain"] / medians[arch]["shared"],
                     None if fallback else 2.5, note="falls back to the plain path (linear attention)" if fallback
                     else "")
    if "qwen2_5_vl" in medians:
        med = medians["qwen2_5_vl"]
        report.ratio("loss_pass_shared_vs_plain", med["plain"] / med["shared"], 2.5)
    return report.finish(a.json)


if __name__ == "__main__":
    sys.exit(main())
