"""`bash run_qwen25vl_train.sh` with no arguments: the embedded default end to end (tiny model, demo data,
both judge services started as processes, a few GRPO steps), and the services stopped afterwards."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, **env_extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "SKIP_INSTALL": "1",  # the test runs inside the installed environment
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DEMO_DIR": str(tmp_path / "demo"),
        "DEMO_ROWS": "8",
        **env_extra,
    }
    return subprocess.run(["bash", str(ROOT / "run_qwen25vl_train.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _judge_urls(log: str) -> list[str]:
    return re.findall(r"ready at (http://127\.0\.0\.1:\d+)", log)


def _down(url: str) -> bool:
    try:
        httpx.get(url + "/health", timeout=2)
    except httpx.HTTPError:
        return True
    return False


@pytest.mark.slow
def test_embedded_default_trains_and_stops_its_judges(tmp_path):
    out = tmp_path / "run"
    proc = _run(tmp_path, OUTPUT_DIR=str(out))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert sorted((out).glob("checkpoint-*")) == [out / "checkpoint-2", out / "checkpoint-4"]
    assert (out / "model.safetensors").is_file() and (out / "train.log").is_file()
    assert "'rewards/format/mean'" in (out / "train.log").read_text()  # per-task reward metrics logged
    urls = _judge_urls(log)
    assert len(urls) == 2 and all(_down(u) for u in urls), urls


@pytest.mark.slow
def test_failed_training_still_stops_the_judges(tmp_path):
    proc = _run(tmp_path, OUTPUT_DIR=str(tmp_path / "run"), CONFIG=str(tmp_path / "missing.yaml"))
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "training failed" in log and "missing.yaml" in log
    urls = _judge_urls(log)
    assert len(urls) == 2 and all(_down(u) for u in urls), urls
