"""`bash run_qwen25vl_train.sh` fails fast and reports clearly: a mistyped training flag stops it before
anything is built or started (the flag names are read without importing torch, and they are exactly the
training entry's), a machine without a GPU gets the CPU config instead of the 8xA800 one, and Ctrl-C on
the no-argument launcher is an interruption with the command that resumes it, not "training failed"."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from versavid_r1.flag_check import check, training_flags

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "run_qwen25vl_train.sh"


def launcher_env(tmp_path: Path, **extra: str) -> dict:
    return {**os.environ, "SKIP_INSTALL": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "DEMO_DIR": str(tmp_path / "demo"), "OUTPUT_DIR": str(tmp_path / "run"), "PYTHONUNBUFFERED": "1", **extra}


def test_the_fast_flag_check_knows_exactly_the_entrys_flags():
    from versavid_r1.grpo import make_parser

    real = {s[2:] for s in make_parser()._option_string_actions if s.startswith("--")}
    assert training_flags() == real | {"config"}  # TrlParser takes --config itself


@pytest.mark.parametrize("argv, said", [
    (["--max_stepz", "2"], "--max_stepz is not a training option (did you mean --max_steps"),
    (["--beta", "-1"], "--beta must be >= 0, got '-1'"),
    (["--num_iterations", "0"], "--num_iterations must be >= 1"),
])
def test_the_fast_flag_check_refuses_what_the_entry_refuses(argv, said):
    from versavid_r1.flag_check import FlagError

    with pytest.raises(FlagError) as exc:
        check(["--config", str(ROOT / "configs/grpo_tiny_cpu.yaml"), *argv])
    assert said in str(exc.value)
    check(["--config", str(ROOT / "configs/grpo_paper_8xA800.yaml"), "--max_step", "3", "--use_peft"])  # prefixes


def test_a_mistyped_flag_stops_the_launcher_before_anything_starts(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), "--", "--max_stepz", "2"], cwd=ROOT, env=launcher_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "ERROR: --max_stepz is not a training option (did you mean --max_steps, --max-steps, --save_steps?)"]
    assert not (tmp_path / "demo").exists() and not (tmp_path / "run").exists(), "nothing was built or started"


@pytest.fixture(scope="module")
def mcqa_rows(tmp_path_factory):
    from versavid_r1.data.demo import make_demo_dataset

    demo = make_demo_dataset(tmp_path_factory.getbasetemp() / "launcher-demo", n=8, seed=0)
    rows = [json.loads(line) for line in demo.read_text().splitlines() if line.strip()]
    mcqa = next(r for r in rows if r["problem_type"] == "MCQA")
    path = demo.parent / "mcqa4.jsonl"
    path.write_text("".join(json.dumps({**mcqa, "problem": f"{mcqa['problem']} ({k})"}) + "\n" for k in range(4)))
    return str(path)


@pytest.mark.slow
def test_without_a_gpu_the_launcher_trains_with_the_cpu_config(tiny_dirs, mcqa_rows, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = subprocess.run(["bash", str(SCRIPT), tiny_dirs["qwen2_5_vl"], mcqa_rows, "--", "--max_steps", "1",
                           "--num_generations", "2", "--num_iterations", "1", "--per_device_train_batch_size", "4",
                           "--max_completion_length", "4", "--save_strategy", "no", "--report_to", "none"],
                          cwd=ROOT, env=launcher_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[run] no GPU found: training with the CPU config configs/grpo_tiny_cpu.yaml" in proc.stdout
    assert "torchrun" not in proc.stdout and "-m versavid_r1.grpo --config configs/grpo_tiny_cpu.yaml" in proc.stdout
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 1


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ctrl_c_on_the_no_argument_launcher_is_an_interruption_with_the_resume_command(tmp_path):
    warm = yaml.safe_load((ROOT / "configs/warm_start_tiny_cpu.yaml").read_text())
    warm["max_steps"] = 2  # the warm start only has to happen, not to teach
    (tmp_path / "warm.yaml").write_text(yaml.safe_dump(warm))
    proc = subprocess.Popen(["bash", str(SCRIPT)], cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=launcher_env(tmp_path, WARM_START_CONFIG=str(tmp_path / "warm.yaml"), DEMO_ROWS="8",
                                                HELDOUT_ROWS="8"))
    log = tmp_path / "run" / "train.log"
    deadline = time.monotonic() + 800
    try:
        while not (log.is_file() and re.search(r"\bstep +1/\d+", log.read_text())):  # GRPO is training
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "GRPO did not start in time"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole process group
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err[-3000:]
    assert "training failed" not in err, err[-3000:]
    last = err.strip().splitlines()[-2:]
    assert re.match(r"\[run\] interrupted (at step \d+|before)", last[0]), err[-2000:]
    assert last[1].startswith(f"[run] resume: OUTPUT_DIR={tmp_path / 'run'} bash run_qwen25vl_train.sh "
                              "--resume_from_checkpoint true"), last[1]
