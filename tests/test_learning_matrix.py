"""scripts/experiments/learning_matrix.py: its table, from results in the shape of heldout.json (the runs
themselves are the main job, tested by tests/test_run_script.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from versavid_r1.heldout import summarize

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("learning_matrix", ROOT / "scripts/experiments/learning_matrix.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(capability: str, seed: int, control: bool, right: dict[str, int], n: int = 8) -> dict:
    outcomes = {name: [i < k for i in range(n)] for name, k in right.items()}
    return {"capability": capability, "seed": seed, "control": control, **summarize(outcomes)}


def test_table_has_a_row_per_run_with_its_twin_and_the_paired_difference():
    script = _script()
    job = _result("avx2", 1, False, {"warm_start": 4, "final": 6, "blind": 2, "shuffled": 1})
    twin = _result("avx2", 1, True, {"warm_start": 2, "final": 2, "blind": 0, "shuffled": 2})
    lone = _result("default", 0, False, {"warm_start": 8, "final": 8, "blind": 2, "shuffled": 2})
    lines = script.table([twin, job, lone]).splitlines()
    assert len(lines) == 4 and lines[0].startswith("| ATEN_CPU_CAPABILITY | seed |")
    row = lines[2].split(" | ")  # sorted by capability: avx2 before default
    assert row[0] == "| avx2" and row[1] == "1" and row[2:6] == ["0.500", "0.750", "0.250", "0.125"]
    lo, hi = job["final_minus_blind"]["ci95"]
    assert row[6] == f"+0.500 [{lo:+.3f}, {hi:+.3f}]" and 0 < lo < 0.5 < hi
    assert row[7] == "+0.250" and row[8] == "0.250 (0.000) |"
    assert "| +0.750 [" in lines[3] and lines[3].endswith("| +0.000 | — |")  # no twin for this one
