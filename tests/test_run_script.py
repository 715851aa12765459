"""`bash run_qwen25vl_train.sh`: `--help`, and the embedded default end to end — the CPU learning experiment
(tiny model, demo data, warm start, both judge services as processes with the lexical backend, GRPO, the
held-out evaluation) — checked from the run's own files: the final policy answers held-out colour questions
on new videos far better than the same policy given grey frames, and the same job trained on grey videos
does not (so the margin is the pixels' doing, not the format's or the answer letters'); every problem type is
scored, no judge item is skipped or failed, the checkpoint's trainer_state.json carries it all, the printed
tables are the files', the picture exists, the console stays clean and the services are stopped afterwards."""
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

from versavid_r1.heldout import CONDITIONS
from versavid_r1.judges.wait import pid_alive
from versavid_r1.tasks import PROBLEM_TYPES

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "run_qwen25vl_train.sh"
GRPO_CONFIG = yaml.safe_load((ROOT / "configs" / "grpo_tiny_cpu.yaml").read_text())
# The learning test runs the default unchanged (its warm start, which teaches the reading, included) but for
# the GRPO run's length, a third of it, and 64 held-out questions instead of 128 (the whole run is
# BENCHMARKS.md's section 8). Steps that generate (and log) completions: with num_iterations > 1 the others
# reuse them.
TEST_STEPS = GRPO_CONFIG["max_steps"] // 3
GENERATION_STEPS = TEST_STEPS // GRPO_CONFIG.get("num_iterations", 1)
HELDOUT_ROWS = 64
DEMO_ROWS = int(re.search(r"DEMO_ROWS:-(\d+)", SCRIPT.read_text()).group(1))  # the launcher's own default
# What reading is worth on the held-out set, and what is left of it when training never saw a pixel. Measured
# at these settings (BENCHMARKS.md, section 8; scripts/experiments/learning_matrix.py): final - blind +0.36 to
# +0.70 (interval lower limits from +0.23), final 0.61 to 0.95, over 3 seeds x 3 ATEN_CPU_CAPABILITY values. The
# blind-trained twin answers the real frames at chance or below (final 0.00 to 0.25 in ten runs). Its own
# final - blind says little: it was trained on grey 128 and the blind condition's grey is each clip's mean,
# which it may answer with nothing parseable (blind 0.00, so final - blind +0.25 at chance).
MIN_READING_MARGIN = 0.15
MAX_TWIN_ABOVE_CHANCE = 0.15


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


def _start(tmp_path: Path, out: Path, demo: Path) -> subprocess.Popen:
    """The embedded default in the background, shortened as the learning test says (TEST_STEPS, HELDOUT_ROWS)."""
    env = _env(tmp_path, OUTPUT_DIR=str(out), DEMO_DIR=str(demo), HELDOUT_ROWS=str(HELDOUT_ROWS))
    return subprocess.Popen(["bash", str(SCRIPT), "--", "--max_steps", str(TEST_STEPS)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _blank_training_videos(demo: Path) -> int:
    """The control: the demo's training rows with every video a constant grey clip of the same size and length
    (the held-out set, written by the launcher, keeps its real videos). Returns the number of videos blanked."""
    from versavid_r1.data.demo import blank_demo_videos, make_demo_dataset

    make_demo_dataset(demo / "data", n=DEMO_ROWS, seed=0)  # the launcher finds it complete and keeps it
    return blank_demo_videos(demo / "data")


def _reading_margin(held: dict) -> tuple[float, float]:
    d = held["final_minus_blind"]
    return d["difference"], d["ci95"][0]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_embedded_default_reads_the_video_and_stops_its_judges(tmp_path):
    out, control_out = tmp_path / "run", tmp_path / "control-run"
    assert _blank_training_videos(tmp_path / "control-demo") > DEMO_ROWS  # MixVidQA rows have two
    # the job and its control run at the same time, one core each (each process has one torch thread)
    job, control = _start(tmp_path, out, tmp_path / "demo"), _start(tmp_path, control_out, tmp_path / "control-demo")
    stdout, stderr = job.communicate(timeout=840)
    control_stdout, control_stderr = control.communicate(timeout=840)
    log = stdout + stderr
    assert job.returncode == 0, log[-4000:]
    assert control.returncode == 0, (control_stdout + control_stderr)[-4000:]

    # the held-out evaluation: heldout.json in the promised shape, its figures in the closing table
    held = json.loads((out / "heldout.json").read_text())
    for name in CONDITIONS:
        assert set(held[name]) == {"accuracy", "ci95", "n"} and held[name]["n"] == HELDOUT_ROWS, held[name]
        lo, hi = held[name]["ci95"]
        assert lo <= held[name]["accuracy"] <= hi
        assert f"{held[name]['accuracy']:6.3f}   [{lo:.3f}, {hi:.3f}]" in stdout, name
    # the policy reads: far above the same policy with grey frames, the interval of the difference above 0
    margin, margin_lo = _reading_margin(held)
    assert margin >= MIN_READING_MARGIN and margin_lo > 0, held
    assert held["final"]["accuracy"] - held["shuffled"]["accuracy"] >= MIN_READING_MARGIN, held
    # ... and the same job whose training never saw a pixel does not: the margin is the pixels' doing
    control_held = json.loads((control_out / "heldout.json").read_text())
    twin = control_held["final"]["accuracy"]
    assert twin < control_held["chance"] + MAX_TWIN_ABOVE_CHANCE, control_held
    assert held["final"]["accuracy"] - twin >= MIN_READING_MARGIN, (held, control_held)

    # configs/eval/demo.yaml reproduces the run's own figure for the final policy (the demo's video settings)
    again = subprocess.run([sys.executable, "-m", "versavid_r1.eval", "--config", "configs/eval/demo.yaml",
                            "--model", str(out), "--data_path", str(tmp_path / "demo" / "heldout" / "heldout.jsonl"),
                            "--output_dir", str(tmp_path / "eval"), "--progress", "false"],
                           cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                           timeout=300)  # one thread, as the job: the same sums, the same greedy answers
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["by_type"]["MCQA"]["overall"]["score_mean"] == held["final"]["accuracy"]

    # the trainer's own log, as saved at the end of training
    state = json.loads((out / "trainer_state.json").read_text())
    steps = [h for h in state["log_history"] if "reward" in h]
    assert len(steps) == GENERATION_STEPS
    for ptype in PROBLEM_TYPES:  # every type scored, by the rule or by a judge service
        assert any(f"rewards/{ptype}/mean" in h for h in steps), ptype
    assert all(h["judge/skipped"] == 0 and h["judge/failures"] == 0 for h in steps)
    assert sum(h["judge/requests"] for h in steps) > 0

    # a checkpoint's trainer_state.json carries the per-type rewards and the judge counters too
    checkpoint = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1] / "trainer_state.json"
    saved = [h for h in json.loads(checkpoint.read_text())["log_history"] if "reward" in h]
    assert saved == steps[: len(saved)] and saved
    assert all({"judge/calls", "judge/skipped", "judge/failures", "rewards/format/mean"} <= set(h) for h in saved)

    # the printed reward table holds the logged values (mean of the first and the last fifth of the steps)
    k = max(1, len(steps) // 5)
    first, last = _mean(h["reward"] for h in steps[:k]), _mean(h["reward"] for h in steps[-k:])
    row = next(line for line in stdout.splitlines() if line.strip().startswith("all "))
    assert row.split()[:4] == ["all", f"{first:.3f}", "->", f"{last:.3f}"]
    png = out / "reward_curve.png"
    assert f"reward curve: {png}" in stdout and png.stat().st_size > 20_000
    # the plot command on the run folder draws and prints the same, held-out block included
    again = subprocess.run([sys.executable, "-m", "versavid_r1.plot", str(out), "--out", str(tmp_path / "again.png")],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and row in again.stdout.splitlines(), again.stdout + again.stderr
    assert "final - blind" in again.stdout and (tmp_path / "again.png").stat().st_size > 20_000

    # the warm start and GRPO trained the language model; the frozen vision tower is the built one, bit for bit
    from safetensors.torch import load_file

    built, final = load_file(str(tmp_path / "demo" / "tiny-qwen25vl" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    vision = [k for k in built if "visual" in k]
    assert vision and all((built[k] == final[k]).all() for k in vision)
    assert any(not (built[k] == final[k]).all() for k in built if "visual" not in k)

    # the warm start ran on the demo rows and GRPO trained from its output
    run_info = json.loads((out / "versavid_run.json").read_text())
    assert run_info["model"] == str(out / "warm-start") and (out / "warm-start" / "model.safetensors").is_file()
    assert held["models"] == {"warm_start": str(out / "warm-start"), "final": str(out)}

    # a clean console: no completion tables, no per-request lines, no repeated warnings
    for noise in ("│", "HTTP Request", "Setting accelerator to CPU", "find_unused_parameters",
                  "All reward functions returned None", "OMP_NUM_THREADS", "'rewards/format/mean'", "Loading weights",
                  "versavid_r1.eval"):
        assert noise not in log, noise
    # what stays on a terminal: every line but the progress bar's redraws
    lines = [line for line in re.split(r"[\r\n]+", log) if line.strip() and not re.match(r"\s*\d+%\|", line)]
    assert len(lines) < 80, "\n".join(lines)

    urls = _judge_urls(log)
    assert len(urls) == 2 and all(_down(u) for u in urls), urls
    assert not any(pid_alive(p) for p in _judge_pids(log)) and len(_judge_pids(log)) == 2
    assert not any(pid_alive(p) for p in _judge_pids(control_stdout + control_stderr))


@pytest.mark.slow
def test_failed_training_still_stops_the_judges(tmp_path):
    # the judges start before the warm start: a warm start that fails (an option its parser does not know)
    # stops the job with them running
    warm = yaml.safe_load((ROOT / "configs" / "warm_start_tiny_cpu.yaml").read_text())
    (tmp_path / "warm.yaml").write_text(yaml.safe_dump({**warm, "no_such_option": 1}))
    proc = _run(tmp_path, OUTPUT_DIR=str(tmp_path / "run"), WARM_START_CONFIG=str(tmp_path / "warm.yaml"),
                DEMO_ROWS="8", HELDOUT_ROWS="8")  # a small demo: the job fails before it trains
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "warm start failed" in log and "no_such_option" in log, log[-3000:]
    pids = _judge_pids(log)
    assert len(pids) == 2 and not any(pid_alive(p) for p in pids), log[-3000:]
