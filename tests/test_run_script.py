"""`bash run_qwen25vl_train.sh`: `--help`, and the embedded default end to end — the CPU learning experiment
(tiny model, demo data, warm start, both judge services as processes with the lexical backend, GRPO) —
checked from the trainer's own files: the reward rises, every problem type is scored, no judge item is
skipped or failed, the checkpoint's trainer_state.json carries it all, the printed table is the log's, the
picture exists, the console stays clean and the services are stopped afterwards."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from versavid_r1.judges.wait import pid_alive
from versavid_r1.tasks import PROBLEM_TYPES

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "run_qwen25vl_train.sh"
GRPO_CONFIG = yaml.safe_load((ROOT / "configs" / "grpo_tiny_cpu.yaml").read_text())
# The learning test runs the default unchanged but for the GRPO run's length: its first half (the same
# seeded trajectory; the whole run is BENCHMARKS.md's section 7). Steps that generate (and log)
# completions: with num_iterations > 1 the others reuse them.
TEST_STEPS = GRPO_CONFIG["max_steps"] // 2
GENERATION_STEPS = TEST_STEPS // GRPO_CONFIG.get("num_iterations", 1)


def _env(tmp_path: Path, **extra: str) -> dict:
    return {
        **os.environ,
        "SKIP_INSTALL": "1",  # the test runs inside the installed environment
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DEMO_DIR": str(tmp_path / "demo"),
        **extra,
    }


def _run(tmp_path: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=_env(tmp_path, **env_extra),
                          capture_output=True, text=True, timeout=900)


def _judge_urls(log: str) -> list[str]:
    return re.findall(r"ready at (http://127\.0\.0\.1:\d+)", log)


def _judge_pids(log: str) -> list[int]:
    found = re.search(r"judge services starting at .* \(pids (\d+) (\d+);", log)
    return [int(p) for p in found.groups()] if found else []


def _python_stub(tmp_path: Path) -> tuple[Path, Path]:
    """(a folder holding a `python` that only leaves a mark, the mark): whether anything called python."""
    stub = tmp_path / "bin"
    stub.mkdir()
    mark = tmp_path / "python-was-called"
    (stub / "python").write_text(f"#!/bin/sh\ntouch {mark}\n")
    (stub / "python").chmod(0o755)
    return stub, mark


def _down(url: str) -> bool:
    try:
        httpx.get(url + "/health", timeout=2)
    except httpx.HTTPError:
        return True
    return False


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_starts_nothing(tmp_path, flag):
    # a `python` that leaves a mark if anything calls it (install, model build, judges, training)
    stub, mark = _python_stub(tmp_path)
    # the help must come before the install step; should it not, the install would use the stub and a
    # throw-away venv, never the real environment
    env = _env(tmp_path, PATH=f"{stub}{os.pathsep}{os.environ['PATH']}", OUTPUT_DIR=str(tmp_path / "run"),
               VENV=str(tmp_path / "venv"), PYTHON=str(stub / "python"))
    env.pop("SKIP_INSTALL")
    started = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT), flag], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert time.monotonic() - started < 2.0
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("VersaVid-R1 training launcher.")
    for word in ("MODEL_PATH", "DATA_PATH", "WARM_START_CONFIG", "SKIP_INSTALL", "--help", "lexical"):
        assert word in proc.stdout
    assert "set -euo" not in proc.stdout and not proc.stdout.lstrip().startswith("#")
    assert not mark.exists() and not (tmp_path / "run").exists() and not (tmp_path / "demo").exists()


@pytest.mark.parametrize("variable", ["CONFIG", "WARM_START_CONFIG", "DEEPSPEED_CONFIG"])
def test_a_missing_config_file_stops_before_anything_starts(tmp_path, variable):
    stub, mark = _python_stub(tmp_path)
    missing = str(tmp_path / "typo.yaml")
    env = _env(tmp_path, PATH=f"{stub}{os.pathsep}{os.environ['PATH']}", OUTPUT_DIR=str(tmp_path / "run"),
               **{variable: missing})
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and f"config file not found: {missing}" in proc.stderr, proc.stderr
    assert not mark.exists() and not (tmp_path / "run").exists() and not (tmp_path / "demo").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_embedded_default_learns_and_stops_its_judges(tmp_path):
    out = tmp_path / "run"
    proc = _run(tmp_path, "--", "--max_steps", str(TEST_STEPS), OUTPUT_DIR=str(out))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]

    # the trainer's own log, as saved at the end of training
    state = json.loads((out / "trainer_state.json").read_text())
    steps = [h for h in state["log_history"] if "reward" in h]
    assert len(steps) == GENERATION_STEPS
    for ptype in PROBLEM_TYPES:  # every type scored, by the rule or by a judge service
        assert any(f"rewards/{ptype}/mean" in h for h in steps), ptype
    assert all(h["judge/skipped"] == 0 and h["judge/failures"] == 0 for h in steps)
    assert sum(h["judge/requests"] for h in steps) > 0

    # the rise: mean reward and format rate of the last fifth of the steps against the first fifth (the
    # policy right after its warm start)
    k = len(steps) // 5
    first, last = steps[:k], steps[-k:]
    reward_first, reward_last = _mean(h["reward"] for h in first), _mean(h["reward"] for h in last)
    format_first, format_last = (_mean(h["rewards/format/mean"] for h in first),
                                 _mean(h["rewards/format/mean"] for h in last))
    assert reward_last > reward_first + 0.1, (reward_first, reward_last)
    assert format_last > format_first, (format_first, format_last)

    # a checkpoint's trainer_state.json carries the per-type rewards and the judge counters too
    checkpoint = out / f"checkpoint-{TEST_STEPS}" / "trainer_state.json"
    saved = [h for h in json.loads(checkpoint.read_text())["log_history"] if "reward" in h]
    assert saved == steps
    assert all(any(f"rewards/{t}/mean" in h for h in saved) for t in PROBLEM_TYPES)
    assert all({"judge/calls", "judge/skipped", "judge/failures", "rewards/format/mean"} <= set(h) for h in saved)

    # the printed table holds the logged values
    row = next(line for line in proc.stdout.splitlines() if line.strip().startswith("all "))
    assert row.split() == ["all", f"{reward_first:.3f}", "->", f"{reward_last:.3f}",
                           f"{format_first:.3f}", "->", f"{format_last:.3f}"]
    png = out / "reward_curve.png"
    assert f"reward curve: {png}" in proc.stdout and png.stat().st_size > 20_000
    # the plot command on the run folder draws and prints the same
    again = subprocess.run([sys.executable, "-m", "versavid_r1.plot", str(out), "--out", str(tmp_path / "again.png")],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and row in again.stdout.splitlines(), again.stdout + again.stderr
    assert (tmp_path / "again.png").stat().st_size > 20_000

    # the warm start ran on the demo rows and GRPO trained from its output
    run_info = json.loads((out / "versavid_run.json").read_text())
    assert run_info["model"] == str(out / "warm-start") and (out / "warm-start" / "model.safetensors").is_file()

    # a clean console: no completion tables, no per-request lines, no repeated warnings
    for noise in ("│", "HTTP Request", "Setting accelerator to CPU", "find_unused_parameters",
                  "All reward functions returned None", "OMP_NUM_THREADS", "'rewards/format/mean'", "Loading weights"):
        assert noise not in log, noise
    # what stays on a terminal: every line but the progress bar's redraws
    lines = [line for line in re.split(r"[\r\n]+", log) if line.strip() and not re.match(r"\s*\d+%\|", line)]
    assert len(lines) < 80, "\n".join(lines)

    urls = _judge_urls(log)
    assert len(urls) == 2 and all(_down(u) for u in urls), urls
    assert not any(pid_alive(p) for p in _judge_pids(log)) and len(_judge_pids(log)) == 2


@pytest.mark.slow
def test_failed_training_still_stops_the_judges(tmp_path):
    # the judges start before the warm start: a warm start that fails (an option its parser does not know)
    # stops the job with them running
    warm = yaml.safe_load((ROOT / "configs" / "warm_start_tiny_cpu.yaml").read_text())
    (tmp_path / "warm.yaml").write_text(yaml.safe_dump({**warm, "no_such_option": 1}))
    proc = _run(tmp_path, OUTPUT_DIR=str(tmp_path / "run"), WARM_START_CONFIG=str(tmp_path / "warm.yaml"))
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "warm start failed" in log and "no_such_option" in log, log[-3000:]
    pids = _judge_pids(log)
    assert len(pids) == 2 and not any(pid_alive(p) for p in pids), log[-3000:]
