#!/usr/bin/env python
"""The demo's held-out reading figures over seeds and torch CPU kernels (BENCHMARKS.md, section 8).

Runs the main job (`bash run_qwen25vl_train.sh`, the embedded default) once per seed and per
`ATEN_CPU_CAPABILITY` value (torch's switch for its CPU kernels: another machine's rounding on this one), and
with `--control` also its blind-trained twin: the same job on training videos that are all grey, whose
accuracy on the real held-out frames (chance or below when nothing was learned from pixels) shows what the
pixels are worth. Each run has its own demo folder and one torch thread;
`--jobs` run at a time. Writes `OUT/matrix.json` and `OUT/matrix.md` (the table), and prints the table.

    .venv/bin/python scripts/experiments/learning_matrix.py --out outputs/learning-matrix --steps 20 --heldout_rows 64
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from versavid_r1.data.demo import blank_demo_videos, make_demo_dataset
from versavid_r1.heldout import CONDITIONS

ROOT = Path(__file__).resolve().parents[2]


def run_job(out: Path, capability: str, seed: int, control: bool, args: argparse.Namespace) -> dict:
    """One main job; its heldout.json with the run's settings. A finished run folder is read, not rerun."""
    name = f"{capability}-seed{seed}" + ("-blind-trained" if control else "")
    run, demo = out / name / "run", out / name / "demo"
    if not (run / "heldout.json").is_file():
        if control:  # the launcher keeps a complete demo folder: make it first, then grey every video
            make_demo_dataset(demo / "data", n=args.demo_rows, seed=0)
            blank_demo_videos(demo / "data")
        env = {**os.environ, "SKIP_INSTALL": "1", "OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": capability,
               "SEED": str(seed), "DEMO_DIR": str(demo), "OUTPUT_DIR": str(run), "DEMO_ROWS": str(args.demo_rows),
               "HELDOUT_ROWS": str(args.heldout_rows), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        extra = ["--", "--max_steps", str(args.steps)] if args.steps else []
        log = out / name / "job.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            status = subprocess.run(["bash", str(ROOT / "run_qwen25vl_train.sh"), *extra], cwd=ROOT, env=env,
                                    stdout=f, stderr=subprocess.STDOUT).returncode
        if status != 0:
            raise RuntimeError(f"{name} failed (exit {status}); log {log}")
    held = json.loads((run / "heldout.json").read_text())
    print(f"  {name}: final {held['final']['accuracy']:.3f}  blind {held['blind']['accuracy']:.3f}", flush=True)
    return {"capability": capability, "seed": seed, "control": control, **held}


def table(results: list[dict]) -> str:
    """One row per capability and seed: the four accuracies, final - blind with its interval, and the twin's
    accuracy on the real frames (and on grey ones)."""
    lines = ["| ATEN_CPU_CAPABILITY | seed | warm start | final | blind | shuffled | final - blind [95 %] "
             "| final - warm start | blind-trained twin: final (blind) |",
             "|---|---|---|---|---|---|---|---|---|"]
    twins = {(r["capability"], r["seed"]): r for r in results if r["control"]}
    for r in sorted((r for r in results if not r["control"]), key=lambda r: (r["capability"], r["seed"])):
        acc = [f"{r[c]['accuracy']:.3f}" for c in CONDITIONS]
        d, w = r["final_minus_blind"], r["final_minus_warm_start"]
        twin = twins.get((r["capability"], r["seed"]))
        twin_d = f"{twin['final']['accuracy']:.3f} ({twin['blind']['accuracy']:.3f})" if twin else "—"
        lines.append(f"| {r['capability']} | {r['seed']} | " + " | ".join(acc)
                     + f" | {d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
                     + f" | {w['difference']:+.3f} | {twin_d} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output folder (one subfolder per run)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--capabilities", nargs="+", default=["default", "avx2", "avx512"])
    p.add_argument("--steps", type=int, default=0, help="GRPO steps (0: the config's own)")
    p.add_argument("--demo_rows", type=int, default=96)
    p.add_argument("--heldout_rows", type=int, default=128)
    p.add_argument("--control", action=argparse.BooleanOptionalAction, default=True,
                   help="also run each job's blind-trained twin (all training videos grey)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (each uses one core)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    todo = list(itertools.product(args.capabilities, args.seeds, [False, True] if args.control else [False]))
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda t: run_job(args.out, *t, args), todo))
    (args.out / "matrix.json").write_text(json.dumps(results, indent=1))
    text = table(results)
    (args.out / "matrix.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
