"""Keep the benchmark scripts (scripts/bench/) from rotting: each one imports, and its smallest piece
runs once. The benchmarks themselves are run by hand (BENCHMARKS.md), never here."""
from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "scripts" / "bench"
SCRIPTS = ("rollout", "judge_service", "reward_stage", "video_load", "train_step", "gpu_step", "loss_pass")


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        yield {name: importlib.import_module(name) for name in ("_common", *SCRIPTS)}
    finally:
        sys.path.remove(str(BENCH))


def test_every_script_has_quick_mode_and_json(bench, capsys):
    for name in SCRIPTS:
        with pytest.raises(SystemExit) as exit_info:
            bench[name].main(["--help"])
        assert exit_info.value.code == 0
        usage = capsys.readouterr().out
        assert all(flag in usage for flag in ("--quick", "--repeats", "--json", "--threads")), name
    a = bench["_common"].base_parser("x").parse_args(["--quick", "--json", "out.json"])
    assert (a.quick, a.json, a.threads, bench["_common"].repeats_of(a)) == (True, "out.json", 1, 3)


def test_ratio_lines_and_report_prints_ratios_last(bench, capsys, tmp_path):
    C = bench["_common"]
    assert C.Ratio("r", 5.3, 4.0).line() == "RATIO r = 5.30x (target >= 4x) PASS"
    assert C.Ratio("r", 3.9, 4.0).line().endswith("MISS")
    assert C.Ratio("o", 12.5, 10.0, higher_is_better=False, unit="%").line() == "RATIO o = 12.5% (target <= 10%) MISS"
    assert C.Ratio("i", 2.0).line() == "RATIO i = 2.00x (no target) INFO"
    rep = C.Report("t")
    rep.add("figures")
    rep.ratio("first", 1.0)
    rep.ratio("headline", 30.0, 20.0)
    rep.finish(str(tmp_path / "r.json"))
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("RATIO headline = 30.00x") and lines[-2].startswith("RATIO first")
    assert '"passed": true' in (tmp_path / "r.json").read_text()
    calls = []
    times = C.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=2, warmup=1)
    assert calls == ["a", "b"] * 3 and [len(v) for v in times.values()] == [2, 2]


def test_reward_batches_and_both_designs_agree(bench):
    from judge_stub_server import StubJudge

    rs = bench["reward_stage"]
    plain, rep = rs.make_batch(2, 8, 0.0), rs.make_batch(2, 8, 0.5)
    assert len(set(plain["completions"])) == 16 and len(set(rep["completions"])) == 16  # thinks differ
    answers = {(p, c.split("<answer>")[1]) for p, c in zip(rep["problem"], rep["completions"])}
    assert len(answers) == 8  # half of the 16 answers repeat within their group
    with StubJudge("qwen") as q, StubJudge("caption") as c:
        import httpx

        batch = rs.make_batch(3, 2, 0.0)  # DarkEventInfer, MixVidQA, caption
        with httpx.Client(trust_env=False) as http:
            seq = rs.run_sequential(http, q.url, c.url, batch)
        proj = rs.run_project(rs.project_reward(q.url, c.url), batch)
        assert proj == seq and len(seq) == 6
        assert [p for p, _ in q.requests].count("/predict") == 4  # 2 DEI + 2 MixVidQA, one by one


def test_video_fit_and_policy_format_wrapper(bench):
    a, b, r2 = bench["video_load"].linear_fit([4, 8, 16], [0.5, 0.9, 1.7])
    assert (round(a, 6), round(b, 6), round(r2, 6)) == (0.1, 0.1, 1.0)
    seen = {}

    async def reward(prompts=None, completions=(), **kw):
        seen["c"] = completions
        return [1.0] * len(completions)

    wrapped = bench["train_step"].policy_formatted(reward)
    out = asyncio.run(wrapped(completions=[[{"role": "assistant", "content": "a <b> c"}], "x"], solution=["s", "s"]))
    assert out == [1.0, 1.0] and wrapped.__name__ == "versavid_reward"
    assert seen["c"] == [[{"role": "assistant", "content": "<think>Looking at the frames.</think><answer>a b c</answer>"}],
                         "<think>Looking at the frames.</think><answer>x</answer>"]


def test_gpu_step_configs_match_published_sizes(bench):
    g = bench["gpu_step"]
    with pytest.raises(SystemExit):
        g.parse_args(["--sizes", "70b"])
    with pytest.raises(SystemExit):
        g.parse_args(["--frame-size", "392"])
    a = g.parse_args(["--quick", "--sizes", "3b,7b"])
    assert (a.sizes, a.frame_hw, a.new_tokens, a.train_tokens, a.repeats) == (["3b", "7b"], (392, 392), 64, [64], 2)
    assert g.parse_args(["--train-tokens", "512,2048"]).train_tokens == [512, 2048]
    assert g.datasheet_bf16_tflops("NVIDIA H100 80GB HBM3") == g.datasheet_bf16_tflops("NVIDIA H200") == 989.4
    assert g.datasheet_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert g.datasheet_bf16_tflops("NVIDIA A100-SXM4-80GB") == 312.0 and g.datasheet_bf16_tflops("Tesla T4") is None
    import torch

    params = {}
    for size in ("3b", "7b"):
        config = g.make_config(size)
        counts = g.count_params(g.build_model(config, "meta", torch.bfloat16))
        params[size] = counts.total
        prompt, grid = g.prompt_inputs(config, 16, 392, 392, 0.5, 80)
        assert grid == (8, 28, 28) and prompt.input_ids.count(config.video_token_id) == 1568
        assert prompt.video_fields["pixel_values_videos"].shape == (6272, 1176)
    # Qwen2.5-VL-3B-Instruct has 3.75 B parameters, -7B-Instruct 8.29 B
    assert abs(params["3b"] / 3.754e9 - 1) < 0.01 and abs(params["7b"] / 8.292e9 - 1) < 0.01


def test_shared_loss_flops_count_the_pairs_the_block_mask_allows(bench):
    """The FLOP model of the shared-prefix pass against the trainer's own block mask, counted pair by pair."""
    import torch

    from versavid_r1.trainer import shared_prefix

    g = bench["gpu_step"]
    config = g.make_config("cpu-tiny")
    counts = g.count_params(g.build_model(config, "meta", torch.float32))
    grid, prompt, completion, rows = (2, 4, 4), 12, 5, 3
    segment = torch.tensor([[0] * (prompt - 1) + [k for k in range(1, rows + 1) for _ in range(completion)]])
    allowed = int(shared_prefix.block_mask(segment).sum())
    flops = {a: g.loss_pass_flops(config, counts, prompt, completion, rows, grid, True, a)
             for a in ("dense", "needed", "executed")}
    per_pair = 4.0 * config.text_config.num_hidden_layers * config.text_config.hidden_size
    length = segment.shape[1]
    assert flops["dense"] - flops["needed"] == pytest.approx(per_pair * (length * length - allowed))
    # the block sdpa computes each completion's block whole: its upper triangle is computed, then masked
    assert flops["executed"] - flops["needed"] == pytest.approx(per_pair * rows * completion * (completion - 1) / 2)
    plain = g.loss_pass_flops(config, counts, prompt, completion, rows, grid, False)
    assert plain == pytest.approx(rows * g.forward_flops(config, counts, prompt + completion, completion, grid))
    paper = bench["loss_pass"].paper_flops()  # 7B, G = 8: the figures the loss-pass benchmark prints
    assert paper[512]["ratio"] > 3 and 1.0 < paper[2048]["ratio_dense_mask"] < paper[2048]["ratio"]


@pytest.mark.slow
def test_gpu_check_dry_run_without_trl(tmp_path):
    """scripts/bench/gpu_check.sh --dry-run: the GPU check's whole code path on CPU with TRL and datasets missing
    (the GPU machine has only torch and transformers), one JSON file out."""
    shim = tmp_path / "missing"
    for name in ("trl", "datasets"):
        (shim / name).mkdir(parents=True)
        (shim / name / "__init__.py").write_text("raise ImportError('not installed on the GPU machine')\n")
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(shim), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--dry-run", "--out", str(out)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    parts = json.loads(out.read_text())["parts"]
    plan = parts["plan"]["data"]["7b"]["loss_pass_tflop"]
    assert plan["512"]["plain"] > plan["512"]["shared"] > 0 and plan["2048"]["shared_dense_mask"] > plan["2048"]["shared"]
    tiny = parts["cpu-tiny"]["data"]
    assert all(name.startswith("versavid_r1_trainer_") for name in tiny["trainer_modules"].values()), \
        "the trainer's modules were loaded from their files, not through the package (which needs TRL)"
    size = tiny["sizes"]["cpu-tiny"]
    assert size["generation"]["median_s"]["shared"] > 0 and size["generation"]["median_s"]["batched"] > 0
    for c in ("4", "8"):
        for path in ("plain", "shared"):
            lp = size["loss_pass"][c][path]
            assert lp["loss_pass_s"] > 0 and lp["mfu_measured_peak"] > 0 and lp["mfu_datasheet_peak"] is None
    assert size["step"]["covers"] == "generation + loss pass + AdamW step"
    ratios = [r["name"] for r in parts["cpu-tiny"]["ratios"]]
    assert "gpu_cpu-tiny_loss_pass_8_shared_vs_plain" in ratios and ratios[-1] == "gpu_cpu-tiny_step_mfu"
