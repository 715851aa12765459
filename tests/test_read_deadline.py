"""A video whose read never returns (a hung mount; here a FIFO nobody writes to) costs one deadline, never the
run: the loader gives up after `--video_read_timeout_s`, validation reports the row, training skips and counts
it, and SIGTERM ends a run blocked on it within seconds, with one process and with two (torchrun, gloo)."""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SMOKE_GRPO, VIDEO
from versavid_r1.data import VideoConfig, load_rows, load_video
from versavid_r1.data.read_deadline import VideoReadTimeout, read_with_deadline, stuck_reads

ROOT = Path(__file__).resolve().parents[1]


def release(fifo: Path, timeout: float = 30.0) -> None:
    """Let the readers stuck on `fifo` go (a writer comes and leaves: they read end-of-file) and wait for them."""
    deadline = time.monotonic() + timeout
    while stuck_reads() and time.monotonic() < deadline:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        time.sleep(0.05)


def hold_reader_side(fifo: Path, deadline: float, proc: subprocess.Popen) -> int:
    """Wait until a process has `fifo` open for reading (it is then blocked in the read) and return a write
    end that keeps it blocked (no data, never end-of-file) for as long as the test holds it."""
    while True:
        assert proc.poll() is None, proc.communicate()[1][-4000:]
        assert time.monotonic() < deadline, "the run never reached the blocking read"
        if fifo.exists() and stat.S_ISFIFO(os.stat(fifo).st_mode):
            try:
                return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                assert exc.errno == errno.ENXIO, exc  # no reader yet
        time.sleep(0.05)


def test_a_read_that_never_returns_fails_at_its_deadline_naming_the_file(tmp_path):
    fifo = tmp_path / "hung.mp4"
    os.mkfifo(fifo)
    cfg = VideoConfig(**VIDEO, read_timeout_s=0.5)
    try:
        with pytest.raises(VideoReadTimeout, match=r"hung\.mp4: reading the video did not finish within 0\.5 s"):
            load_video({"video": str(fifo), "problem_type": "MCQA"}, cfg)
        assert stuck_reads() == 1, "the reader thread is given up, not waited for"
    finally:
        release(fifo)
    assert stuck_reads() == 0
    assert read_with_deadline(lambda: 7, 0.5, "x") == 7  # a read that returns is unaffected
    with pytest.raises(ValueError, match="read_timeout_s must be a finite number > 0"):
        VideoConfig(read_timeout_s=0)


def test_validation_reports_the_row_whose_read_blocks(demo_jsonl, tmp_path, capsys):
    from versavid_r1.data.cli import validate_main

    rows = [json.loads(line) for line in demo_jsonl.read_text().splitlines()]
    good = next(r for r in rows if r["problem_type"] == "MCQA")
    shutil.copy(demo_jsonl.parent / good["video"], tmp_path / "good.mp4")
    os.mkfifo(tmp_path / "hung.mp4")
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({**good, "video": v}) + "\n" for v in ("good.mp4", "hung.mp4")))
    try:
        code = validate_main([str(data), "--nframes", "4", "--video_read_timeout_s", "0.5", "--no_progress"])
    finally:
        release(tmp_path / "hung.mp4")
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 1
    assert f"{data}:2: error: video:" in text and "hung.mp4" in text and "did not finish within 0.5 s" in text, text
    assert f"{data}:1:" not in text, text


def test_training_skips_and_counts_the_row_whose_read_blocks(tiny_dirs, demo_jsonl, tmp_path, caplog):
    from test_trainer import make_trainer

    lines = demo_jsonl.read_text().splitlines()[:4]  # one row of each problem type
    for line in lines:
        videos = json.loads(line)["video"]
        for v in videos if isinstance(videos, list) else [videos]:
            (tmp_path / v).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(demo_jsonl.parent / v, tmp_path / v)
    (tmp_path / "rows.jsonl").write_text("\n".join(lines) + "\n")
    cfg = VideoConfig(**VIDEO, read_timeout_s=1.0)
    rows = load_rows(tmp_path / "rows.jsonl", cfg)
    hung = Path(rows[0]["video_paths"][0])
    hung.unlink()
    os.mkfifo(hung)  # after validation, the mount of this file hangs
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], rows, cfg, tmp_path, per_device_train_batch_size=8,
                           num_generations=2, max_completion_length=4)
    caplog.set_level(logging.WARNING, logger="versavid_r1.trainer.row_guard")
    try:
        trainer.train()
    finally:
        release(hung)
    assert trainer.state.global_step == 1
    assert trainer.state.log_history[0]["data/skipped_rows"] == 1.0
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert rows[0]["source_line"] in warning and "VideoReadTimeout" in warning and str(hung) in warning


# --- SIGTERM while a read blocks ------------------------------------------------------------------------
def one_video_dataset(demo_jsonl: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Four MCQA rows that all show one copied video (so every read of the run meets it)."""
    rows = [json.loads(line) for line in demo_jsonl.read_text().splitlines()]
    mcqa = next(r for r in rows if r["problem_type"] == "MCQA")
    video = tmp_path / "shared.mp4"
    shutil.copy(demo_jsonl.parent / mcqa["video"], video)
    data = tmp_path / "mcqa.jsonl"
    data.write_text("".join(json.dumps({**mcqa, "problem": f"{mcqa['problem']} ({k})", "video": video.name}) + "\n"
                            for k in range(4)))
    return data, video


def run_until_blocked_then_sigterm(cmd: list[str], video: Path) -> tuple[int, str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    writer = None
    try:
        writer = hold_reader_side(video, time.monotonic() + 400, proc)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("still running 10 s after SIGTERM")
        took = time.monotonic() - sent
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)  # no process of the run is left (torchrun's workers included)
        return proc.returncode, err, took
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        if writer is not None:
            os.close(writer)


def training_flags(model: str, data: Path, out: Path) -> list[str]:
    return ["--config", str(ROOT / "configs/grpo_tiny_cpu.yaml"), "--model_name_or_path", model,
            "--data_path", str(data), "--output_dir", str(out), "--report_to", "none", "--log_completions", "false",
            *SMOKE_GRPO, "--max_steps", "2", "--per_device_train_batch_size", "4", "--max_completion_length", "4",
            "--video_read_timeout_s", "600"]


@pytest.mark.slow
def test_sigterm_ends_a_run_blocked_on_a_read_within_seconds(tiny_dirs, demo_jsonl, tmp_path):
    data, video = one_video_dataset(demo_jsonl, tmp_path)
    cmd = [sys.executable, str(ROOT / "tests/hung_mount_run.py"), str(video), "--",
           *training_flags(tiny_dirs["qwen2_5_vl"], data, tmp_path / "out")]
    code, err, took = run_until_blocked_then_sigterm(cmd, video)
    assert code == 128 + signal.SIGTERM, err[-3000:]
    assert "interrupted at step 0" in err, err[-3000:]


@pytest.mark.slow
def test_sigterm_ends_a_two_process_run_blocked_on_a_read(tiny_dirs, demo_jsonl, tmp_path):
    data, video = one_video_dataset(demo_jsonl, tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests/hung_mount_run.py"), str(video), "--",
           *training_flags(tiny_dirs["qwen2_5_vl"], data, tmp_path / "out")]
    code, err, took = run_until_blocked_then_sigterm(cmd, video)
    assert code != 0 and "interrupted at step 0" in err, err[-3000:]
