"""Running one benchmark over several processes (`torchrun --nproc_per_node N`, or N processes over several
nodes) and merging what they wrote.

Process k of N evaluates rows k, k+N, k+2N, ... of the data file (`EvalConfig.shard_index/num_shards`) into
its own folder `<benchmark out>/shard-k-of-N/`, with the same kill-safe record files and resume rules as a
one-process run, so a killed process loses at most its batch in flight and the same command resumes every
shard where it stopped. When all have finished, process 0 merges the shards' current records, in data
order, into `<benchmark out>/samples.jsonl` and writes the summary there; records depend on the row and the
settings only, so the merged file equals a one-process run's record for record.
"""
from __future__ import annotations

import dataclasses
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from .runner import SAMPLES_FILE, SUMMARY_JSON, RunStats, prepare_output, select_items, write_summary
from .store import RecordFile


def process_group() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) in a plain process."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def make_barrier(world: int, timeout_hours: float) -> Callable[[], None]:
    """A barrier over the `world` processes (gloo, so it needs no GPU); a no-op for one process."""
    if world <= 1:
        return lambda: None
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=timedelta(hours=timeout_hours))
    return dist.barrier


def shard_dir(out: Path, rank: int, world: int) -> Path:
    return Path(out) / f"shard-{rank}-of-{world}"


def shard_config(cfg, rank: int, world: int):
    """`cfg` for process `rank` of `world`: its rows and its own output folder."""
    if world <= 1:
        return cfg
    return dataclasses.replace(cfg, shard_index=rank, num_shards=world,
                               output_dir=str(shard_dir(Path(cfg.output_dir), rank, world)))


def merge_shards(cfg, world: int) -> dict[str, Any]:
    """Merge the shards of `cfg.output_dir` (see the module docstring); returns the summary."""
    out = Path(cfg.output_dir)
    prepare_output(out, cfg)
    items = select_items(cfg)
    records: dict[str, dict] = {}
    stats = RunStats()
    for rank in range(world):
        folder = shard_dir(out, rank, world)
        records.update(RecordFile(folder / SAMPLES_FILE).load())
        summary = folder / SUMMARY_JSON
        if summary.is_file():
            run = json.loads(summary.read_text(encoding="utf-8")).get("run", {})
            for key, value in run.items():
                if key != "rows" and isinstance(value, (int, float)):
                    setattr(stats, key, max(getattr(stats, key), value) if key == "seconds"
                            else getattr(stats, key) + value)
    stats.rows = len(items)
    ordered = [records[it.id] for it in items if it.id in records]
    merged = RecordFile(out / SAMPLES_FILE)
    tmp = out / (SAMPLES_FILE + ".tmp")
    tmp.unlink(missing_ok=True)
    RecordFile(tmp).append(ordered)
    tmp.touch()
    os.replace(tmp, merged.path)
    return write_summary(cfg, items, merged, stats)
