"""The held-out evaluation's result file and table: `RUN_DIR/heldout.json` (written by
`versavid_r1.heldout_eval`, which says what the four conditions are).

    {"warm_start": {"accuracy": A, "ci95": [LO, HI], "n": N}, "final": {...}, "blind": {...}, "shuffled": {...},
     "final_minus_blind": {"difference": D, "ci95": [LO, HI], "method": "..."}, "final_minus_shuffled": {...},
     "final_minus_warm_start": {...}, "chance": C, "data_path": ..., "models": {...}}

Each accuracy has its 95 % Wilson interval; each difference Newcombe's paired interval, as every condition
answers the same questions (`versavid_r1.stats`). Imports neither torch nor transformers (`versavid_r1.plot`
reads it).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from versavid_r1.stats import paired_difference_interval, wilson_interval

HELDOUT_FILE = "heldout.json"
CONDITIONS = ("warm_start", "final", "blind", "shuffled")
DIFFERENCES = (("final", "blind"), ("final", "shuffled"), ("final", "warm_start"))
LABELS = {
    "warm_start": "warm start (the starting policy)",
    "final": "final (the trained policy)",
    "blind": "blind (final, every frame grey)",
    "shuffled": "shuffled (final, videos permuted)",
}
PAIRED_METHOD = "Newcombe paired score interval (method 10), 95 %"


def summarize(outcomes: dict[str, list[bool]]) -> dict[str, Any]:
    """Accuracies with Wilson intervals per condition and paired intervals of the differences."""
    out: dict[str, Any] = {}
    for name in CONDITIONS:
        right = outcomes[name]
        lo, hi = wilson_interval(sum(right), len(right))
        out[name] = {"accuracy": sum(right) / len(right), "ci95": [lo, hi], "n": len(right)}
    for a, b in DIFFERENCES:
        delta, lo, hi = paired_difference_interval(outcomes[a], outcomes[b])
        out[f"{a}_minus_{b}"] = {"difference": delta, "ci95": [lo, hi], "method": PAIRED_METHOD}
    return out


def read(run_dir: str | Path) -> Optional[dict[str, Any]]:
    """The run folder's heldout.json, or None when the run had no held-out evaluation."""
    path = Path(run_dir) / HELDOUT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def format_table(result: dict[str, Any]) -> str:
    """The held-out block of the closing table."""
    n = result["final"]["n"]
    lines = [f"held-out accuracy: {n} multiple-choice questions on videos never seen in training, greedy "
             f"(chance {result.get('chance', float('nan')):.3f}); 95 % intervals:"]
    for name in CONDITIONS:
        r = result[name]
        lines.append(f"  {LABELS[name]:36s} {r['accuracy']:6.3f}   [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]")
    for a, b in DIFFERENCES:
        d = result[f"{a}_minus_{b}"]
        lines.append(f"  {a + ' - ' + b:36s} {d['difference']:+6.3f}   [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] (paired)")
    return "\n".join(lines)
