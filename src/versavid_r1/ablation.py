"""The paper's data ablation in miniature, on the CPU demo (`scripts/experiments/ablation.py`).

The paper trains on multiple-choice QA alone, on QA plus captions, and on all four problem types, and reports
that adding captions naively lowers both QA and captioning, while adding the two proxy tasks lifts both. Here
each variant trains the demo's tiny model on its share of the demo rows (`VARIANTS`: the rows of those problem
types), with the same budget for every variant: the demo's warm start (configs/warm_start_tiny_cpu.yaml, its
steps) and its GRPO run (configs/grpo_tiny_cpu.yaml, its steps, prompts per step and generations), for each
seed. Each trained policy is then measured on held-out data it never saw:

- QA: accuracy on the held-out colour questions (the run's own held-out evaluation, `heldout.json` "final",
  with its 95 % Wilson interval);
- captioning: AutoDQ F1 on held-out caption videos, scored by the caption judge with its lexical backend
  (per-sample F1 = 2RP/(R+P); the mean over the videos with a 95 % t interval).

Across seeds each variant gets the mean and a 95 % t interval of the seed means (3 seeds: t = 4.30, wide).
The judges run in this process (lexical backends, 127.0.0.1); training and evaluation run as the project's
own entry points in subprocesses, `jobs` at a time. Results: `OUT/ablation.json`, `OUT/ablation.md` (the
table) and `OUT/ablation.png`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional, Sequence

from versavid_r1.stats import mean_interval
from versavid_r1.tasks import CAPTION, DARK_EVENT_INFER, MCQA, MIX_VID_QA

VARIANTS: dict[str, tuple[str, ...]] = {
    "qa": (MCQA,),
    "qa+caption": (MCQA, CAPTION),
    "all four": (MCQA, CAPTION, DARK_EVENT_INFER, MIX_VID_QA),
}
ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class AblationSettings:
    out: Path
    seeds: Sequence[int] = (0, 1, 2)
    variants: Sequence[str] = tuple(VARIANTS)
    demo_rows: int = 96
    heldout_rows: int = 128
    caption_rows: int = 32
    jobs: int = 2
    warm_start_config: str = "configs/warm_start_tiny_cpu.yaml"
    grpo_config: str = "configs/grpo_tiny_cpu.yaml"
    extra_grpo_args: Sequence[str] = ()


def _python(*args: str, log: Path, env_extra: Optional[dict] = None) -> None:
    """Run `python ARGS` from the repository root, one torch thread; raise with the log's tail if it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", **(env_extra or {})}
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} ... failed (exit {proc.returncode}); log {log}:\n"
                           + log.read_text()[-2000:])


def prepare_data(s: AblationSettings) -> dict[str, Path]:
    """The demo rows, one JSONL per variant beside the videos, and the two held-out files."""
    from versavid_r1.data.demo import make_demo_dataset, make_heldout_dataset

    demo = make_demo_dataset(s.out / "data", n=s.demo_rows, seed=0)
    rows = [json.loads(line) for line in demo.read_text().splitlines() if line.strip()]
    paths = {"heldout": make_heldout_dataset(s.out / "heldout", n=s.heldout_rows, seed=0),
             "heldout_caption": make_heldout_dataset(s.out / "heldout", n=s.caption_rows, seed=0, problem_type=CAPTION)}
    for name in s.variants:
        path = demo.parent / f"variant-{name.replace(' ', '_').replace('+', '_')}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["problem_type"] in VARIANTS[name]))
        paths[name] = path
    return paths


def run_one(s: AblationSettings, name: str, seed: int, paths: dict[str, Path], judges: dict[str, str]) -> dict:
    """Warm start, GRPO (with the held-out QA evaluation) and the held-out caption evaluation of one variant."""
    run = s.out / "runs" / f"{name.replace(' ', '_').replace('+', '_')}-seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if not (run / "heldout.json").is_file():
        _python("-m", "versavid_r1.warm_start", "--config", s.warm_start_config, "--model_name_or_path",
                str(s.out / "tiny-qwen25vl"), "--data_path", str(paths[name]), "--output_dir", str(run / "warm-start"),
                "--seed", str(seed), log=run / "warm_start.log")
        _python("-m", "versavid_r1.grpo", "--config", s.grpo_config, "--model_name_or_path", str(run / "warm-start"),
                "--data_path", str(paths[name]), "--output_dir", str(run), "--overwrite_output_dir", "true",
                "--seed", str(seed), "--heldout_path", str(paths["heldout"]), "--qwen_judge_url", judges["qwen"],
                "--caption_judge_url", judges["caption"], "--report_to", "none", *s.extra_grpo_args,
                log=run / "grpo.log")
    _python("-m", "versavid_r1.eval", "--config", "configs/eval/demo.yaml", "--model", str(run), "--data_path",
            str(paths["heldout_caption"]), "--output_dir", str(run / "caption-eval"), "--overwrite", "true",
            "--caption_judge_url", judges["caption"], "--progress", "false", log=run / "caption_eval.log")
    held = json.loads((run / "heldout.json").read_text())
    records = [json.loads(line) for line in (run / "caption-eval" / "samples.jsonl").read_text().splitlines()]
    f1 = [float(r["f1"]) if r.get("status") == "ok" else 0.0 for r in records]
    mean, lo, hi = mean_interval(f1)
    return {"variant": name, "seed": seed, "qa": held["final"], "qa_warm_start": held["warm_start"],
            "qa_blind": held["blind"], "caption_f1": {"mean": mean, "ci95": [lo, hi], "n": len(f1)},
            "seconds": round(time.time() - started, 1)}


def aggregate(results: Sequence[dict], variants: Sequence[str]) -> list[dict]:
    """Per variant: the seeds' figures and the mean with a t interval over the seeds."""
    out = []
    for name in variants:
        mine = sorted((r for r in results if r["variant"] == name), key=lambda r: r["seed"])
        qa = [r["qa"]["accuracy"] for r in mine]
        cap = [r["caption_f1"]["mean"] for r in mine]
        out.append({"variant": name, "seeds": [r["seed"] for r in mine], "qa": qa, "caption_f1": cap,
                    "qa_mean": mean_interval(qa), "caption_f1_mean": mean_interval(cap), "runs": mine})
    return out


def markdown(rows: Sequence[dict], s: AblationSettings) -> str:
    """The ablation table."""
    lines = [f"Held-out QA: accuracy on {s.heldout_rows} colour questions (chance 0.25), per seed with its 95 % "
             f"Wilson interval; held-out captioning: AutoDQ F1 (lexical judge) on {s.caption_rows} videos, per seed "
             "with its 95 % t interval; last columns: mean over the seeds with a 95 % t interval of the seed means.",
             "", "| variant | QA accuracy per seed | QA mean [95 %] | caption F1 per seed | caption F1 mean [95 %] |",
             "|---|---|---|---|---|"]
    for row in rows:
        qa = "; ".join(f"{r['qa']['accuracy']:.3f} [{r['qa']['ci95'][0]:.2f}, {r['qa']['ci95'][1]:.2f}]"
                       for r in row["runs"])
        cap = "; ".join(f"{r['caption_f1']['mean']:.3f} [{r['caption_f1']['ci95'][0]:.2f}, "
                        f"{r['caption_f1']['ci95'][1]:.2f}]" for r in row["runs"])
        m, lo, hi = row["qa_mean"]
        cm, clo, chi = row["caption_f1_mean"]
        lines.append(f"| {row['variant']} | {qa} | **{m:.3f}** [{lo:.2f}, {hi:.2f}] | {cap} | "
                     f"**{cm:.3f}** [{clo:.2f}, {chi:.2f}] |")
    return "\n".join(lines) + "\n"


def draw(rows: Sequence[dict], out: Path) -> Path:
    """Two panels (QA accuracy, caption F1): each seed a dot, the mean a bar with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, mean_key, title in ((axes[0], "qa", "qa_mean", "held-out QA accuracy"),
                                     (axes[1], "caption_f1", "caption_f1_mean", "held-out caption F1 (AutoDQ)")):
        for i, row in enumerate(rows):
            m, lo, hi = row[mean_key]
            ax.bar(i, m, color="0.8", yerr=[[m - lo], [hi - m]], capsize=6)
            ax.scatter([i] * len(row[key]), row[key], color="tab:blue", zorder=3, s=18)
        ax.set_xticks(range(len(rows)), [r["variant"] for r in rows])
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3, axis="y")
    axes[0].axhline(0.25, color="black", linestyle="--", linewidth=1, label="chance")
    axes[0].legend(fontsize=8)
    fig.suptitle("Data ablation on the CPU demo (dots: seeds; bars: mean, 95 % t interval over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def run(s: AblationSettings) -> list[dict]:
    """Every variant x seed (see the module docstring); writes and returns the aggregated rows."""
    from versavid_r1.judges import (
        CaptionJudgeSettings, QwenJudgeSettings, create_caption_judge_app, create_qwen_judge_app,
    )
    from versavid_r1.judges.server import BackgroundServer
    from versavid_r1.tiny_model import build_tiny_qwen25vl

    s.out.mkdir(parents=True, exist_ok=True)
    build_tiny_qwen25vl(s.out / "tiny-qwen25vl", seed=0)
    paths = prepare_data(s)
    with BackgroundServer(create_qwen_judge_app(QwenJudgeSettings(model="lexical", backend="lexical"))) as qwen, \
            BackgroundServer(create_caption_judge_app(CaptionJudgeSettings(backend="lexical"))) as caption:
        judges = {"qwen": qwen.url, "caption": caption.url}
        jobs = [(name, seed) for seed in s.seeds for name in s.variants]
        with ThreadPoolExecutor(max_workers=s.jobs) as pool:
            results = list(pool.map(lambda job: run_one(s, job[0], job[1], paths, judges), jobs))
    rows = aggregate(results, s.variants)
    (s.out / "ablation.json").write_text(json.dumps({"settings": {k: str(v) if isinstance(v, Path) else v
                                                                   for k, v in dataclasses.asdict(s).items()},
                                                      "variants": rows}, indent=1, default=list))
    (s.out / "ablation.md").write_text(markdown(rows, s))
    draw(rows, s.out / "ablation.png")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="scripts/experiments/ablation.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/ablation", help="output folder (runs, data, table, picture)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (each uses one core)")
    p.add_argument("--heldout_rows", type=int, default=128)
    p.add_argument("--caption_rows", type=int, default=32)
    p.add_argument("--grpo_args", nargs=argparse.REMAINDER, default=[],
                   help="extra flags for every GRPO run (the rest of the command line), e.g. --max_steps 20")
    args = p.parse_args(argv)
    s = AblationSettings(out=Path(args.out), seeds=args.seeds, variants=args.variants, jobs=args.jobs,
                         heldout_rows=args.heldout_rows, caption_rows=args.caption_rows,
                         extra_grpo_args=args.grpo_args)
    started = time.time()
    run(s)
    print((s.out / "ablation.md").read_text())
    print(f"ablation done in {time.time() - started:.0f} s: {s.out}/ablation.md, ablation.png, ablation.json")
    return 0
