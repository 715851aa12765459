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
SCRIPTS = ("rollout", "judge_service", "reward_stage", "video_load", "train_step", "gpu_step")


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
    assert (a.sizes, a.frame_hw, a.new_tokens, a.train_tokens, a.repeats) == (["3b", "7b"], (392, 392), 64, 256, 2)
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


def test_gpu_step_runs_on_cpu_without_trl(tmp_path):
    """The GPU machine may lack TRL and datasets: the tiny CPU mode must run with both unimportable."""
    code = ("import sys, runpy; sys.modules['trl'] = None; sys.modules['datasets'] = None; "
            f"sys.argv = ['gpu_step.py', '--sizes', 'cpu-tiny', '--quick', '--generations', '2', '--frames', '4', "
            f"'--frame-size', '56x56', '--new-tokens', '3', '--train-tokens', '4', '--repeats', '1', "
            f"'--json', '{tmp_path / 'g.json'}']\n"
            f"try:\n    runpy.run_path('{BENCH / 'gpu_step.py'}', run_name='__main__')\n"
            "except SystemExit as e:\n"
            "    print('FILE-LOADED', 'versavid_r1_trainer_video_inputs' in sys.modules); sys.exit(e.code)")
    env = {**os.environ, "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "FILE-LOADED True", proc.stdout[-2000:]  # video_inputs came from its file, not the package
    assert lines[-2].startswith("RATIO gpu_cpu-tiny_train_mfu = "), proc.stdout[-2000:]
    assert "RATIO gpu_cpu-tiny_rollout_batched_vs_sequential" in proc.stdout
    data = json.loads((tmp_path / "g.json").read_text())["data"]["sizes"]["cpu-tiny"]
    assert data["generation"]["new_tokens"] == 3 and data["train"]["seq_len"] == data["prompt_tokens"] + 4
    assert data["train"]["optimizer"] == "adamw" and data["train"]["model_flops"] > 0
