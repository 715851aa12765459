"""Keep a run alive when a row that passed validation fails to load later (a file changed on disk, a flaky
network mount): skip it, name it, count it, and stop only past a budget.

`RowGuard.prepare` builds the inputs of every unique row of a generation batch. A row whose build raises
is recorded (`FailedRow`: its `file:line` and id, its videos, the exception) and every copy of it in the
batch is replaced by another row of the dataset, so a GRPO batch keeps its G copies per prompt. The
replacement is a deterministic function of the seed and the failed row (a SHA-256 of both picks the
candidates, rows already known to fail are passed over), so every process that holds copies of the row
picks the same one; with several processes the failures are first shared (`sync`, an all-gather), so a
file that fails on one rank only is replaced on all of them. More than `max_skipped` distinct failed rows
stop training with `SkippedRowsExceeded`, which lists them all. A row once failed is not retried: later
draws of it are replaced at once, without counting again.
"""
from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass
from typing import Callable, Generic, Optional, Protocol, Sequence, TypeVar

from .rows import uniform_keys
from .video_inputs import row_key

log = logging.getLogger(__name__)

DEFAULT_MAX_SKIPPED_ROWS = 10
_CANDIDATES = 64  # replacement candidates drawn per failed row before giving up
_MAX_ROUNDS = 16  # rounds of replace-and-retry within one batch (each may fail anew on a flaky mount)

T = TypeVar("T")


class SkippedRowsExceeded(RuntimeError):
    """More rows failed to load than the budget allows; the message lists every one of them."""


class RowPool(Protocol):
    """The rows replacements are drawn from (the dataset being iterated)."""

    def __len__(self) -> int: ...

    def row(self, index: int) -> dict: ...


@dataclass(frozen=True)
class FailedRow:
    key: str  # row_key of the row
    name: str  # "data/train.jsonl:12 (id q7)"
    videos: str
    error: str  # "VideoReadError: cannot decode frames of ..."

    def __str__(self) -> str:
        return f"{self.name}, video {self.videos}: {self.error}"


def describe_row(row: dict) -> str:
    """How a row is named in logs: its `file:line` (added by load_rows), id and problem type."""
    parts = [str(row.get("source_line") or "row")]
    if row.get("id") is not None:
        parts.append(f"id {row['id']!r}")
    if row.get("problem_type"):
        parts.append(str(row["problem_type"]))
    return parts[0] + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")


def _videos(row: dict) -> str:
    paths = row.get("video_paths") or row.get("video")
    return " + ".join(map(str, paths)) if isinstance(paths, (list, tuple)) else str(paths)


class RowGuard(Generic[T]):
    """See the module docstring. `sync(list) -> list`: every process's list, concatenated (None: one
    process). `verbose`: log the failures (the main process; the others stay quiet)."""

    def __init__(self, max_skipped: int = DEFAULT_MAX_SKIPPED_ROWS, seed: int = 0,
                 sync: Optional[Callable[[list], list]] = None, verbose: bool = True):
        if max_skipped < 0:
            raise ValueError(f"max_skipped_rows must be >= 0, got {max_skipped}")
        self.max_skipped = max_skipped
        self.seed = seed
        self.sync = sync or (lambda items: items)
        self.verbose = verbose
        self.skipped: dict[str, FailedRow] = {}  # by row key, in the order they failed

    def prepare(self, rows: Sequence[dict], build: Callable[[dict], T], pool: RowPool) -> tuple[list[dict], dict[str, T]]:
        """`(rows, built)`: the batch's rows with every failed one replaced (all its copies alike), and the
        result of `build` for each of their keys. Raises SkippedRowsExceeded past the budget."""
        rows = list(rows)
        built: dict[str, T] = {}
        stand_in: dict[str, dict] = {}  # failed key -> its replacement, chosen once per batch
        for _ in range(_MAX_ROUNDS):
            for i, r in enumerate(rows):
                key = row_key(r)
                if key in self.skipped:
                    if key not in stand_in:
                        stand_in[key] = self._replacement(r, pool)
                    rows[i] = stand_in[key]
            local: dict[str, FailedRow] = {}
            for row in rows:
                key = row_key(row)
                if key in built or key in local:
                    continue
                try:
                    built[key] = build(row)
                except Exception as exc:  # noqa: BLE001 - any failure to load this row is the row's, not the run's
                    local[key] = FailedRow(key, describe_row(row), _videos(row), f"{type(exc).__name__}: {exc}")
            new = self._record(self.sync(list(local.values())))
            if not new:
                return uniform_keys(rows), built
        raise SkippedRowsExceeded(self._message(f"rows kept failing after {_MAX_ROUNDS} rounds of replacement"))

    def _record(self, failures: list[FailedRow]) -> list[FailedRow]:
        new = []
        for f in failures:
            if f.key not in self.skipped:
                self.skipped[f.key] = f
                new.append(f)
                if self.verbose:
                    log.warning("skipping a row that fails to load (%d of at most %d): %s",
                                len(self.skipped), self.max_skipped, f)
        if len(self.skipped) > self.max_skipped:
            raise SkippedRowsExceeded(self._message(f"more than max_skipped_rows={self.max_skipped} rows failed"))
        return new

    def _replacement(self, row: dict, pool: RowPool) -> dict:
        """The row that stands in for a failed one: the same in every process for the same seed."""
        key = row_key(row)
        digest = hashlib.sha256(f"{self.seed}\n{key}".encode("utf-8", "surrogatepass")).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        for _ in range(min(_CANDIDATES, 4 * len(pool))):
            candidate = pool.row(rng.randrange(len(pool)))
            if row_key(candidate) not in self.skipped:
                return candidate
        raise SkippedRowsExceeded(self._message(f"no loadable row left to replace {describe_row(row)} with"))

    def _message(self, why: str) -> str:
        listed = "\n".join(f"  - {f}" for f in self.skipped.values())
        return (f"training stopped: {why}. Rows that failed to load ({len(self.skipped)}):\n{listed}\n"
                "Fix or remove them (python scripts/validate_data.py names every bad row), or raise "
                "--max_skipped_rows.")
