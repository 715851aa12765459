"""scripts/experiments/ablation.py (not part of the default run): its command line, the variants' data
(the demo rows of exactly those problem types) and the table from per-run results."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from versavid_r1.ablation import VARIANTS, AblationSettings, aggregate, markdown, prepare_data
from versavid_r1.stats import mean_interval

ROOT = Path(__file__).resolve().parents[1]


def test_help_names_the_variants():
    proc = subprocess.run([sys.executable, "scripts/experiments/ablation.py", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "--seeds" in proc.stdout and "qa+caption" in proc.stdout


def test_variant_files_hold_exactly_their_problem_types(tmp_path):
    paths = prepare_data(AblationSettings(out=tmp_path, demo_rows=12, heldout_rows=4, caption_rows=2))
    everything = [json.loads(line) for line in (tmp_path / "data" / "demo.jsonl").read_text().splitlines()]
    for name, types in VARIANTS.items():
        rows = [json.loads(line) for line in paths[name].read_text().splitlines()]
        assert rows == [r for r in everything if r["problem_type"] in types] and rows
    assert paths["heldout"].parent == paths["heldout_caption"].parent
    assert len(paths["heldout_caption"].read_text().splitlines()) == 2


def test_table_holds_each_seed_and_the_mean_over_seeds():
    results = []
    for name, base in (("qa", 0.5), ("all four", 0.7)):
        for seed in (0, 1, 2):
            acc = base + 0.01 * seed
            results.append({"variant": name, "seed": seed, "qa": {"accuracy": acc, "ci95": [acc - 0.1, acc + 0.1]},
                            "caption_f1": {"mean": 0.3 + 0.02 * seed, "ci95": [0.2, 0.4], "n": 32}})
    rows = aggregate(list(reversed(results)), ["qa", "all four"])
    assert [r["variant"] for r in rows] == ["qa", "all four"] and rows[0]["seeds"] == [0, 1, 2]
    assert rows[1]["qa_mean"] == pytest.approx(mean_interval([0.7, 0.71, 0.72]))
    table = markdown(rows, AblationSettings(out=Path("o")))
    assert "| all four | 0.700 [0.60, 0.80]; 0.710 [0.61, 0.81]; 0.720 [0.62, 0.82] | **0.710**" in table
    assert "**0.320**" in table  # the caption mean of 0.30, 0.32, 0.34
