"""Training on a mixture of sources: each source gets its exact proportional quota (largest remainder), rows
of a source are drawn uniformly without replacement, the shuffled mix carries the weights' proportions
from its first rows on (binomial tolerance), the same seed gives the same list in every process, and the
training entry reads `data_mixture` from a YAML config, logs the counts and loads the demo data with it."""
from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter

import pytest
import yaml

from versavid_r1.data.mixture import MixtureSource, build_mixture, draw, parse_mixture, quotas
from versavid_r1.trainer.preflight import PreflightError, load_training_data

PAPER = [2003, 1841, 2332, 4624]  # MCQA, DEI, MixVidQA, caption (the paper's mix)


def test_quotas_are_the_rounded_shares_and_add_up():
    for total in (1, 7, 300, 10_800):
        q = quotas(PAPER, total)
        assert sum(q) == total
        assert all(abs(qi - total * w / sum(PAPER)) < 1 for qi, w in zip(q, PAPER))
    assert quotas(PAPER, sum(PAPER)) == PAPER  # weights = sizes: every row once


def test_draws_follow_the_weights_and_are_seeded():
    pools = [[f"mcqa{i}" for i in range(50)], [f"dei{i}" for i in range(30)], [f"mix{i}" for i in range(200)],
             [f"cap{i}" for i in range(8)]]
    size = 400
    counts = quotas(PAPER, size)
    mix = draw(pools, counts, seed=42)
    per_source = Counter(i for i, _ in mix)
    assert [per_source[i] for i in range(4)] == counts
    for i, pool in enumerate(pools):
        times = Counter(item for j, item in mix if j == i)
        low, high = divmod(counts[i], len(pool))
        # Whole repeats plus a without-replacement remainder: every row low or low+1 times.
        assert set(times.values()) <= {low, low + 1} and sum(times.values()) == counts[i]
        assert all(item in pool for item in times)
    assert draw(pools, counts, seed=42) == mix
    other = draw(pools, counts, seed=7)
    assert other != mix and Counter(i for i, _ in other) == per_source

    # The shuffled mix carries the proportions from its start (what the first steps, or max_train_samples, see):
    # in the first n rows source i is about n * w_i / W, within 4 binomial standard deviations.
    for seed in range(5):
        head = draw(pools, counts, seed=seed)[:200]
        for i, w in enumerate(PAPER):
            p = w / sum(PAPER)
            k = sum(1 for j, _ in head if j == i)
            assert abs(k - 200 * p) <= 4 * math.sqrt(200 * p * (1 - p)), (seed, i, k)


def test_rows_of_a_downsampled_source_are_picked_uniformly():
    pool, quota, seeds = list(range(20)), 5, 400
    hits = Counter()
    for seed in range(seeds):
        picked = [item for _, item in draw([pool], [quota], seed)]
        assert len(set(picked)) == quota
        hits.update(picked)
    p = quota / len(pool)
    sd = math.sqrt(seeds * p * (1 - p))
    assert all(abs(hits[r] - seeds * p) <= 4.5 * sd for r in pool), hits


def test_parse_mixture_forms_and_errors():
    assert parse_mixture(["caption@data/all.jsonl=4624", "data/mcqa.jsonl=2003", "MCQA@=1.5",
                          "weird@name.jsonl=2"]) == [
        MixtureSource(4624.0, "data/all.jsonl", "caption"), MixtureSource(2003.0, "data/mcqa.jsonl"),
        MixtureSource(1.5, None, "MCQA"), MixtureSource(2.0, "weird@name.jsonl")]
    assert parse_mixture('[{"path": "a.jsonl", "weight": 3}]') == [MixtureSource(3, "a.jsonl")]
    for bad in (["a.jsonl"], ["a.jsonl=0"], ["a.jsonl=-1"], [{"path": "a.jsonl"}], [{"path": "a", "weight": 1,
                                                                                      "extra": 1}],
                [{"path": "a", "weight": 1, "problem_type": "OpenQA"}], []):
        with pytest.raises(ValueError, match="data_mixture"):
            parse_mixture(bad)
    with pytest.raises(ValueError, match="no path and no data_path"):
        build_mixture(parse_mixture(["MCQA@=1"]), lambda p: [], seed=0)


def _parse(tmp_path, config: dict, *flags: str):
    from versavid_r1.grpo import make_parser

    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump(config))
    return make_parser().parse_args_and_config(
        ["--config", str(path), "--output_dir", str(tmp_path / "out"), "--use_cpu", "true", "--bf16", "false", *flags])


def test_training_entry_loads_a_mixture_from_the_config(tmp_path, demo_jsonl, video_cfg, caplog):
    # Two sources: the demo's MCQA rows as their own file, and the caption rows of the whole demo file.
    rows = [json.loads(line) for line in demo_jsonl.read_text().splitlines()]
    mcqa = demo_jsonl.parent / "mixture-test-mcqa.jsonl"  # next to the videos: relative paths still resolve
    mcqa.write_text("".join(json.dumps(r) + "\n" for r in rows if r["problem_type"] == "MCQA"))
    config = {"data_mixture": [{"path": str(mcqa), "weight": 1}, {"problem_type": "caption", "weight": 3}],
              "mixture_size": 12, "data_path": str(demo_jsonl), "seed": 5,
              "nframes": video_cfg.nframes, "min_pixels": video_cfg.min_pixels, "max_pixels": video_cfg.max_pixels}
    script_args, training_args, _ = _parse(tmp_path, config)
    with caplog.at_level(logging.INFO, logger="versavid_r1.data.mixture"):
        mixed, report = load_training_data(script_args, training_args, script_args.video_config())
    assert Counter(r["problem_type"] for r in mixed) == {"MCQA": 3, "caption": 9}
    assert [s["drawn"] for s in report["sources"]] == [3, 9] and report["seed"] == 5
    available = [sum(r["problem_type"] == t for r in rows) for t in ("MCQA", "caption")]
    assert [s["available"] for s in report["sources"]] == available and min(available) >= 1
    assert "data mixture: 12 rows per epoch from 2 sources (seed 5)" in caplog.text
    assert (f"caption@{demo_jsonl}: 9 rows (75.0%, weight 3 = 75.0%) of {available[1]} valid rows "
            f"(x{9 / available[1]:.2f})") in caplog.text

    # Every process builds the same list from the seed, whatever its own random state.
    random.seed(1234)
    again, _ = load_training_data(script_args, training_args, script_args.video_config())
    assert again == mixed
    script_args, training_args, _ = _parse(tmp_path, config, "--data_seed", "6")
    assert load_training_data(script_args, training_args, script_args.video_config())[0] != mixed

    config["data_mixture"][1]["problem_type"] = "DarkEventInfer"
    config["data_path"] = str(mcqa)
    script_args, training_args, _ = _parse(tmp_path, config)
    with pytest.raises(PreflightError, match=f"DarkEventInfer@{mcqa}: no valid rows of problem_type"):
        load_training_data(script_args, training_args, script_args.video_config())
