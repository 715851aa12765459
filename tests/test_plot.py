"""`python -m versavid_r1.plot RUN_DIR`: the reward curve and start/end table of a run folder, on synthetic
`trainer_state.json` files (any problem types, steps where a type is absent, checkpoints vs the final state)
and on the compact console line of each training step."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from versavid_r1.plot import PNG_NAME, find_state, problem_types, summary, training_logs
from versavid_r1.trainer.progress import log_line, reward_line

ROOT = Path(__file__).resolve().parents[1]


def synthetic_history(n: int = 20) -> list[dict]:
    """n training steps: reward rises linearly; type "A" logged every step, "B" on even steps only; plus the
    non-step entries a real log holds (the end-of-training summary)."""
    history = []
    for i in range(n):
        step = {"step": i + 1, "loss": 0.0, "reward": 0.1 * i, "rewards/format/mean": i / n,
                "rewards/versavid_reward/mean": 0.1 * i,  # a reward function, not a problem type
                "rewards/A/mean": 0.05 * i, "rewards/A/format": 0.5, "rewards/A/task_mean": 1.0}
        if i % 2 == 0:
            step.update({"rewards/B/mean": 2.0 - 0.1 * i, "rewards/B/format": 1.0})
        history.append(step)
    history.append({"step": n, "train_runtime": 12.0, "train_loss": 0.0})
    return history


def write_state(folder: Path, history: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    steps = [h["step"] for h in history]
    path = folder / "trainer_state.json"
    path.write_text(json.dumps({"global_step": max(steps), "log_history": history}))
    return path


def test_summary_matches_the_logged_values(tmp_path):
    history = synthetic_history(20)
    write_state(tmp_path, history)
    logs = training_logs(find_state(tmp_path))
    assert len(logs) == 20 and problem_types(logs) == ["A", "B"]
    rows = {r.name: r for r in summary(logs)}
    steps = [h for h in history if "reward" in h]
    first, last = steps[:4], steps[-4:]  # a fifth of 20 logged steps
    mean = lambda hs, k: sum(h[k] for h in hs if k in h) / len([h for h in hs if k in h])  # noqa: E731
    assert rows["all"].reward_start == pytest.approx(mean(first, "reward"))
    assert rows["all"].reward_end == pytest.approx(mean(last, "reward"))
    assert rows["all"].format_end == pytest.approx(mean(last, "rewards/format/mean"))
    assert rows["A"].reward_end == pytest.approx(mean(last, "rewards/A/mean"))
    # B is only on even steps: averaged over the steps of the window that logged it (steps 17 and 19)
    assert rows["B"].reward_end == pytest.approx((2.0 - 1.6 + 2.0 - 1.8) / 2)


def test_cli_writes_the_png_and_prints_the_table(tmp_path):
    write_state(tmp_path, synthetic_history(30))
    proc = subprocess.run([sys.executable, "-m", "versavid_r1.plot", str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    png = tmp_path / PNG_NAME
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    lines = proc.stdout.splitlines()
    all_row = next(line for line in lines if line.strip().startswith("all "))
    # the first fifth (6 steps) of 0.1*i is 0.25, the last 2.65; formats 2.5/30 and 26.5/30
    assert all_row.split() == ["all", "0.250", "->", "2.650", "0.083", "->", "0.883"]
    assert f"reward curve: {png}" in proc.stdout


def test_newest_state_wins_and_missing_state_is_a_clear_error(tmp_path):
    history = synthetic_history(10)
    write_state(tmp_path / "checkpoint-4", [h for h in history if h["step"] <= 4])
    write_state(tmp_path / "checkpoint-10", history)
    assert find_state(tmp_path) == tmp_path / "checkpoint-10" / "trainer_state.json"
    write_state(tmp_path, history)  # the folder's own state (end of training) wins a tie
    assert find_state(tmp_path) == tmp_path / "trainer_state.json"
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "versavid_r1.plot", str(empty)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "no trainer_state.json" in proc.stderr and str(empty) in proc.stderr


def test_compact_reward_line():
    logs = {"reward": 0.8432, "rewards/format/mean": 0.75, "rewards/caption/mean": 1.1, "rewards/caption/format": 1,
            "rewards/MCQA/mean": 0.5, "rewards/MCQA/format": 0.5, "rewards/versavid_reward/mean": 0.8432,
            "judge/failures": 0.0, "judge/skipped": 0.0, "step_time": 2.06}
    assert reward_line(12, 60, logs) == (
        "step 12/60  reward 0.843  format 0.75 | MCQA 0.50  caption 1.10 | 2.1 s")
    logs["judge/skipped"] = 2.0
    assert "| judge failures 0 skipped 2 |" in reward_line(12, 60, logs)
    assert reward_line(60, 60, {"train_runtime": 12.0}) is None
    assert log_line(60, 60, {"train_runtime": 12.0, "epoch": 3}) == "train_runtime 12  epoch 3"
    assert log_line(7, 60, {"loss": 0.00125, "kl": 0.03}) is None  # a step that reused its completions


def test_heldout_figures_are_drawn_and_printed_when_the_run_has_them(tmp_path):
    from PIL import Image

    from versavid_r1.heldout import HELDOUT_FILE, summarize
    from versavid_r1.plot import report

    write_state(tmp_path, synthetic_history(10))
    _, without = report(tmp_path, tmp_path / "plain.png")
    assert "held-out" not in without
    held = summarize({"warm_start": [True, False] * 32, "final": [True] * 48 + [False] * 16,
                      "blind": [True] * 16 + [False] * 48, "shuffled": [False, True, False, False] * 16})
    (tmp_path / HELDOUT_FILE).write_text(json.dumps({**held, "chance": 0.25}))
    png, table = report(tmp_path, tmp_path / "with.png")
    assert table.startswith(without) and "64 multiple-choice questions" in table
    assert "final (the trained policy)            0.750   [0.632, 0.840]" in table  # Wilson of 48/64
    assert "final - blind" in table and "+0.500" in table
    # a third panel below the two curves: a taller picture of the same width
    plain, drawn = Image.open(tmp_path / "plain.png").size, Image.open(png).size
    assert drawn[0] == plain[0] and drawn[1] > plain[1] * 1.3
