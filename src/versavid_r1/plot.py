"""The reward curve of a GRPO run: `python -m versavid_r1.plot RUN_DIR [--out PNG] [--fraction 0.2]`.

Reads the trainer's own log (`log_history` of `trainer_state.json`: the run folder's, else its newest
checkpoint's, whichever has more steps), draws the total reward and the reward of every problem type
found in the log (`rewards/<type>/mean`) over the steps, with the format rate (`rewards/format/mean`)
below, into `RUN_DIR/reward_curve.png`, and prints a table of the mean reward and format rate over the
first and the last fifth of the logged steps, overall and per type. A run evaluated on a held-out file
(`--heldout_path`: `heldout.json`, versavid_r1.heldout) also gets its held-out accuracies with their 95 %
intervals, drawn in a third panel and printed after the table. Works on any run folder of
`versavid_r1.grpo`, CPU demo or GPU run, whatever its problem types; `versavid_r1.grpo` calls it at the
end of training. Imports neither torch nor transformers.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from versavid_r1 import heldout
from versavid_r1.tasks import PROBLEM_TYPES

STATE_FILE = "trainer_state.json"
PNG_NAME = "reward_curve.png"
REWARD = "reward"
FORMAT = "rewards/format/mean"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_TYPE_FORMAT = re.compile(r"^rewards/(?P<type>[^/]+)/format$")


def type_key(ptype: str) -> str:
    return f"rewards/{ptype}/mean"


def type_format_key(ptype: str) -> str:
    return f"rewards/{ptype}/format"


def find_state(run_dir: str | Path) -> Path:
    """The `trainer_state.json` of a run folder with the most logged steps (the folder's own, written at
    the end of training, or its newest checkpoint's); FileNotFoundError naming the folder when none."""
    run_dir = Path(run_dir)
    candidates = [run_dir / STATE_FILE] + [d / STATE_FILE for d in run_dir.glob("checkpoint-*") if _CHECKPOINT.match(d.name)]
    found = [p for p in candidates if p.is_file()]
    if not found:
        raise FileNotFoundError(f"{run_dir}: no {STATE_FILE} in the folder or in a checkpoint-* folder of it "
                                "(is it the output_dir of a training run that reached a checkpoint?)")
    return max(found, key=lambda p: (json.loads(p.read_text()).get("global_step", 0), p == run_dir / STATE_FILE))


def training_logs(state_path: str | Path) -> list[dict]:
    """The training-step entries of `log_history` (those with a total reward), in step order."""
    history = json.loads(Path(state_path).read_text()).get("log_history", [])
    return sorted((h for h in history if isinstance(h.get(REWARD), (int, float))), key=lambda h: h.get("step", 0))


def problem_types(logs: Sequence[dict]) -> list[str]:
    """The problem types of a log: names with a `rewards/<type>/format` entry; the project's four in their
    usual order first, any other in order of appearance."""
    found: list[str] = []
    for h in logs:
        for key in h:
            m = _TYPE_FORMAT.match(key)
            if m and m["type"] not in found:
                found.append(m["type"])
    known = [t for t in PROBLEM_TYPES if t in found]
    return known + [t for t in found if t not in known]


def series(logs: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key` over the steps that logged it (a type absent from a step's batch is absent)."""
    points = [(int(h["step"]), float(h[key])) for h in logs if isinstance(h.get(key), (int, float))]
    return [s for s, _ in points], [v for _, v in points]


def _mean(values: Sequence[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


@dataclass
class Row:
    name: str
    reward_start: Optional[float]
    reward_end: Optional[float]
    format_start: Optional[float]
    format_end: Optional[float]


def summary(logs: Sequence[dict], fraction: float = 0.2) -> list[Row]:
    """Mean reward and format rate over the first and the last `fraction` of the logged steps (at least
    one step each): overall, then per problem type (over the steps of that window that logged the type)."""
    if not logs:
        return []
    k = max(1, int(len(logs) * fraction))
    first, last = logs[:k], logs[-k:]

    def window(entries: Sequence[dict], key: str) -> Optional[float]:
        return _mean(series(entries, key)[1])

    rows = [Row("all", window(first, REWARD), window(last, REWARD), window(first, FORMAT), window(last, FORMAT))]
    for ptype in problem_types(logs):
        rk, fk = type_key(ptype), type_format_key(ptype)
        rows.append(Row(ptype, window(first, rk), window(last, rk), window(first, fk), window(last, fk)))
    return rows


def format_table(rows: Sequence[Row], n_steps: int, fraction: float = 0.2) -> str:
    k = max(1, int(n_steps * fraction))
    cell = lambda v: "     -" if v is None else f"{v:6.3f}"  # noqa: E731
    lines = [f"reward and format rate, mean over the first and the last {k} of {n_steps} logged steps:",
             f"  {'':16s} {'reward':>6s} {'':>2s} {'':6s}   {'format':>6s}",
             f"  {'':16s} {'start':>6s} -> {'end':>6s}   {'start':>6s} -> {'end':>6s}"]
    for r in rows:
        lines.append(f"  {r.name:16s} {cell(r.reward_start)} -> {cell(r.reward_end)}   "
                     f"{cell(r.format_start)} -> {cell(r.format_end)}")
    return "\n".join(lines)


def _smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (the raw per-step values of a few prompts are noisy)."""
    return [sum(values[max(0, i - window + 1): i + 1]) / (i + 1 - max(0, i - window + 1)) for i in range(len(values))]


def draw(logs: Sequence[dict], out: str | Path, title: str = "", held: Optional[dict] = None) -> Path:
    """Write the reward-curve PNG of `logs` (and of the held-out result `held`, when given) to `out`."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    window = max(1, len(logs) // 10)
    ratios = [3, 2] + ([2] if held else [])
    fig, axes = plt.subplots(len(ratios), 1, figsize=(9, 7 + 2.6 * bool(held)),
                             gridspec_kw={"height_ratios": ratios})
    top, bottom = axes[0], axes[1]
    bottom.sharex(top)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    curves = [("all (total reward)", REWARD)] + [(p, type_key(p)) for p in problem_types(logs)]
    for i, (label, key) in enumerate(curves):
        steps, values = series(logs, key)
        if not steps:
            continue
        colour = "black" if key == REWARD else colours[i % len(colours)]
        top.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
        top.plot(steps, _smooth(values, window), color=colour, linewidth=2.4 if key == REWARD else 1.6, label=label)
    top.set_ylabel("reward")
    top.set_title(title or "GRPO reward per step")
    top.legend(loc="best", fontsize=8)
    top.grid(alpha=0.3)
    steps, values = series(logs, FORMAT)
    bottom.plot(steps, values, color="black", alpha=0.25, linewidth=0.8)
    bottom.plot(steps, _smooth(values, window), color="black", linewidth=2.0, label="format rate (all)")
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_ylabel("format rate")
    bottom.set_xlabel(f"step (thin: per step; thick: mean of the last {window})")
    bottom.legend(loc="best", fontsize=8)
    bottom.grid(alpha=0.3)
    if held:
        _draw_heldout(axes[2], held)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _draw_heldout(ax, held: dict) -> None:
    """Held-out accuracy per condition with its 95 % interval, and the chance level."""
    names = [c for c in heldout.CONDITIONS if c in held]
    acc = [held[c]["accuracy"] for c in names]
    err = [[a - held[c]["ci95"][0] for a, c in zip(acc, names)], [held[c]["ci95"][1] - a for a, c in zip(acc, names)]]
    bars = ax.bar(range(len(names)), acc, yerr=err, capsize=6, color=["0.6", "tab:blue", "0.8", "0.8"][: len(names)])
    for bar, a in zip(bars, acc):
        ax.annotate(f"{a:.2f}", (bar.get_x() + bar.get_width() / 2, a), xytext=(14, 3), textcoords="offset points",
                    fontsize=8)
    if isinstance(held.get("chance"), (int, float)):
        ax.axhline(held["chance"], color="black", linestyle="--", linewidth=1, label=f"chance ({held['chance']:.2f})")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xticks(range(len(names)), [heldout.LABELS[c].split(" (")[0] for c in names])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("held-out accuracy")
    d = held.get("final_minus_blind")
    note = f"; final - blind {d['difference']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]" if d else ""
    ax.set_title(f"held-out questions (n = {held[names[0]]['n']}, 95 % intervals){note}", fontsize=10)
    ax.grid(alpha=0.3, axis="y")


def report(run_dir: str | Path, out: Optional[str | Path] = None, fraction: float = 0.2) -> tuple[Path, str]:
    """Draw the curve of a run folder and return (PNG path, table text)."""
    state = find_state(run_dir)
    logs = training_logs(state)
    if not logs:
        raise ValueError(f"{state}: log_history holds no training step with a reward")
    held = heldout.read(run_dir)
    png = draw(logs, out or Path(run_dir) / PNG_NAME, title=f"{Path(run_dir).resolve().name}: GRPO reward per step",
               held=held)
    table = format_table(summary(logs, fraction), len(logs), fraction)
    return png, table + ("\n\n" + heldout.format_table(held) if held else "")


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m versavid_r1.plot", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="output_dir of a training run")
    ap.add_argument("--out", default=None, help=f"PNG path (default: RUN_DIR/{PNG_NAME})")
    ap.add_argument("--fraction", type=float, default=0.2, help="share of the steps averaged for start and end")
    args = ap.parse_args(argv)
    if not 0 < args.fraction <= 0.5:
        ap.error("--fraction must be in (0, 0.5]")
    try:
        png, table = report(args.run_dir, args.out, args.fraction)
    except (FileNotFoundError, ValueError) as err:
        print(f"versavid_r1.plot: error: {err}", file=sys.stderr)
        return 2
    print(table)
    print(f"reward curve: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
