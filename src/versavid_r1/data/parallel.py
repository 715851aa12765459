"""Running row validation over a file's lines, in this process or in a pool of processes.

Decoding every row's sampled frames (what training will decode) makes validation of a large dataset
CPU-bound; `workers` > 1 spreads the rows over that many processes (spawned, so no decoder or torch
thread state is forked). Results come back in file order, and at most a few chunks per worker are in
flight, so memory stays bounded for any file size. Clips decoded in worker processes are not cached
in this one: use workers for the command-line validator, not for the check before training.
"""
from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterable, Iterator, Optional

from versavid_r1.data.config import VideoConfig
from versavid_r1.data.limits import RowLimits

Line = tuple[int, Any, Optional[str]]  # (line number, parsed value or None, JSON error or None)
Result = tuple[int, list, list, Optional[dict]]  # (line number, errors, warnings, normalised row or None)

_CHUNK = 8  # rows per task: enough to amortise the transfer, few enough to keep every worker busy
_IN_FLIGHT = 4  # chunks per worker submitted ahead


@dataclass
class RowCheck:
    """What to check, picklable for the workers. `decode_share` = (k, n): decode only the rows whose
    0-based position i has i % n == k (n processes each decoding a share); None: every row."""

    root: str
    cfg: VideoConfig
    limits: RowLimits
    check_videos: bool
    decode: bool
    decode_share: Optional[tuple[int, int]] = None

    def __post_init__(self) -> None:
        self._infos = None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_infos"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._infos = None

    def run(self, ordinal: int, line: Line) -> Result:
        from versavid_r1.data.schema import RowIssue, normalize_row, validate_row
        from versavid_r1.data.video_checks import InfoCache

        lineno, row, json_error = line
        if json_error is not None:
            return lineno, [RowIssue(lineno, "json", json_error)], [], None
        if self.check_videos and self._infos is None:
            self._infos = InfoCache(self.cfg.backend, self.cfg.read_timeout_s)
        decode = self.decode and (self.decode_share is None or ordinal % self.decode_share[1] == self.decode_share[0])
        errors, warnings = validate_row(row, lineno, self.root, self.cfg, self._infos, self.limits, decode)
        return lineno, errors, warnings, None if errors else normalize_row(row, self.root)


def _init_worker() -> None:
    """One torch thread per worker: the workers are the parallelism (N workers x all-core torch pools
    would oversubscribe the CPU)."""
    import torch

    torch.set_num_threads(1)


def _run_chunk(check: RowCheck, items: list[tuple[int, Line]]) -> list[Result]:
    return [check.run(ordinal, line) for ordinal, line in items]


def validated_rows(lines: Iterable[Line], check: RowCheck, workers: int = 0) -> Iterator[Result]:
    """One `Result` per line, in order; `workers` > 1 runs the checks in that many processes."""
    numbered = enumerate(lines)
    if workers <= 1:
        for ordinal, line in numbered:
            yield check.run(ordinal, line)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        pending: deque = deque()
        while True:
            while len(pending) < workers * _IN_FLIGHT:
                chunk = list(islice(numbered, _CHUNK))
                if not chunk:
                    break
                pending.append(pool.submit(_run_chunk, check, chunk))
            if not pending:
                return
            yield from pending.popleft().result()
