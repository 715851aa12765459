"""Several training processes decide and fail together (`versavid_r1.trainer.rank_sync`).

Two real gloo processes under torchrun run `tests/rank_sync_worker.py`: the ranks' generation-path choice is
one (rank 0 alone could share the prefill; neither does); a video that fails on rank 1 only is skipped by
both; and building a batch that fails on rank 1 only, outside any row, stops BOTH ranks at once, each with
rank 1's error text (rank 0 would otherwise block in its next collective until
the process-group timeout, or be killed by torchrun without a word about why).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rank_sync_worker import BATCH_ERROR, LOADER_ERROR

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_ranks_choose_one_path_and_stop_together_on_one_ranks_error(tiny_dirs, demo_jsonl, tmp_path):
    logs = tmp_path / "logs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--log-dir", str(logs), "--redirects", "3", "--tee", "3",
           str(ROOT / "tests" / "rank_sync_worker.py"), tiny_dirs["qwen2_5_vl"], str(demo_jsonl), str(tmp_path / "out")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    elapsed = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    # 1. one path for both ranks: TRL's (4 copies encoded), although rank 0's batch alone could share
    assert sorted(re.findall(r"rank=(\d) videos=(\d+)", out)) == [("0", "4"), ("1", "4")], out[-3000:]
    # 2. a row that fails on rank 1 only is skipped on both ranks (the same stand-in row), training goes on
    assert sorted(re.findall(r"rank=(\d) skipped=(\S*)", out)) == [("0", "demo.jsonl:1"), ("1", "demo.jsonl:1")], out[-3000:]
    per_rank = {int(p.parent.name): p.read_text() for p in logs.rglob("stderr.log")}
    assert set(per_rank) == {0, 1}, sorted(logs.rglob("*"))
    assert LOADER_ERROR in per_rank[0], per_rank[0][-2000:]  # rank 0 logs the row rank 1 could not load
    # 3. both ranks stopped with rank 1's batch error, none went on
    assert BATCH_ERROR in per_rank[1]
    assert f"rank 1: RuntimeError: {BATCH_ERROR}" in per_rank[0], per_rank[0][-2000:]
    assert "went on after the failure" not in out
    assert elapsed < 200, f"{elapsed:.0f} s"
