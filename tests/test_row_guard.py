"""A row that fails to load during training (its file changed after validation) is skipped, named, counted and
replaced by another row, with all its G copies, identically in every process; past `max_skipped_rows` training
stops with the list. Real trainer on the tiny model, real mp4s, and two real gloo processes for the consensus."""
from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import socket
import zlib

import pytest

from test_trainer import make_trainer
from versavid_r1.data import load_rows
from versavid_r1.trainer import ScriptArguments
from versavid_r1.trainer.row_guard import RowGuard, SkippedRowsExceeded
from versavid_r1.trainer.video_inputs import row_key


@pytest.fixture
def own_rows(demo_jsonl, video_cfg, tmp_path):
    """The first four demo rows (all four types) with their videos copied here, validated: files this test
    may break without touching the session's demo data."""
    lines = demo_jsonl.read_text().splitlines()[:4]
    for line in lines:
        for video in (lambda v: v if isinstance(v, list) else [v])(json.loads(line)["video"]):
            (tmp_path / video).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(demo_jsonl.parent / video, tmp_path / video)
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return load_rows(path, video_cfg)


def test_a_row_failing_during_training_is_skipped_named_counted_and_replaced(tiny_dirs, own_rows, video_cfg,
                                                                              tmp_path, caplog):
    bad = own_rows[0]
    video = bad["video_paths"][0]
    with open(video, "r+b") as f:  # the file changes on disk after validation (a copy cut short)
        f.truncate(len(f.read()) // 2)
    scored = []

    def reward(prompts, completions, source_line, **kwargs):
        scored.extend(source_line)
        return [float(zlib.crc32(c[0]["content"].encode()) % 5) for c in completions]

    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], own_rows, video_cfg, tmp_path, reward=reward,
                           per_device_train_batch_size=8, num_generations=2, max_completion_length=4)
    caplog.set_level(logging.WARNING, logger="versavid_r1.trainer.row_guard")
    trainer.train()  # the bad row was drawn (all 4 rows are in the batch) and the step still ran
    assert trainer.state.global_step == 1
    assert trainer.state.log_history[0]["data/skipped_rows"] == 1.0
    assert len(scored) == 8 and bad["source_line"] not in scored
    assert scored[0::2] == scored[1::2], "the G=2 copies of each prompt stay together"
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert bad["source_line"] in warning and video in warning and "VideoReadError" in warning


def test_past_the_budget_training_stops_with_the_list(tiny_dirs, own_rows, video_cfg, tmp_path):
    for r in own_rows[:2]:
        for path in r["video_paths"]:
            open(path, "wb").close()
    trainer = make_trainer(tiny_dirs["qwen2_5_vl"], own_rows, video_cfg, tmp_path)
    trainer.row_guard.max_skipped = 1
    batch = [trainer.train_dataset[i] for i in (0, 0, 1, 1)]
    with pytest.raises(SkippedRowsExceeded) as err:
        trainer._build_video_batch(batch)
    text = str(err.value)
    assert all(r["source_line"] in text for r in own_rows[:2]) and "--max_skipped_rows" in text


class ListRows:
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def row(self, i):
        return dict(self.rows[i])


POOL = [{"id": f"r{i}", "problem": f"q{i}"} for i in range(8)]


def test_replacement_is_deterministic_given_the_seed():
    def fail_r0(row):
        if row["id"] == "r0":
            raise OSError("mount went away")
        return row["id"]

    picks = []
    for seed in (1, 1, 2, 3):
        rows, built = RowGuard(5, seed=seed).prepare([POOL[0], POOL[0], POOL[1], POOL[1]], fail_r0, ListRows(POOL))
        assert rows[0] == rows[1] and rows[0]["id"] != "r0" and rows[2:] == [POOL[1], POOL[1]]
        assert set(built) == {row_key(r) for r in rows}
        picks.append(rows[0]["id"])
    assert picks[0] == picks[1] and len(set(picks)) > 1


def _rank_main(rank: int, port: int, out) -> None:
    """One of two processes: each holds copies of r0; only rank 1 cannot load it (a flaky mount)."""
    import os

    from accelerate import PartialState
    from accelerate.state import AcceleratorState
    from accelerate.utils import gather_object

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    AcceleratorState._reset_state(reset_partial_state=True)  # forked from a process that had its own state
    assert PartialState(cpu=True).num_processes == 2

    def build(row):
        if rank == 1 and row["id"] == "r0":
            raise OSError("flaky mount")
        return row["id"]

    guard = RowGuard(3, seed=7, sync=gather_object)  # what Qwen25VLGRPOTrainer passes with several processes
    mine = [POOL[0], POOL[0], POOL[2 + rank], POOL[2 + rank]]
    rows, _ = guard.prepare(mine, build, ListRows(POOL))
    out.put((rank, [r["id"] for r in rows], [f.name for f in guard.skipped.values()]))


def test_a_row_failing_on_one_process_is_replaced_alike_on_all():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_rank_main, args=(rank, port, out)) for rank in (0, 1)]
    for p in procs:
        p.start()
    results = dict((rank, (ids, skipped)) for rank, ids, skipped in (out.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(timeout=60)
    (ids0, skipped0), (ids1, skipped1) = results[0], results[1]
    assert ids0[0] == ids0[1] == ids1[0] == ids1[1] != "r0"  # rank 0 loaded r0 fine, yet replaced it too
    assert ids0[2:] == ["r2", "r2"] and ids1[2:] == ["r3", "r3"]
    assert skipped0 == skipped1 == ["row (id 'r0')"]


def test_options_reach_the_checks():
    args = ScriptArguments(max_skipped_rows=3, judge_max_field_chars=500, max_prompt_length=4096)
    limits = args.row_limits()
    assert (limits.judge_max_field_chars, limits.max_prompt_length) == (500, 4096)
    with pytest.raises(ValueError, match="max_skipped_rows"):
        ScriptArguments(max_skipped_rows=-1)
