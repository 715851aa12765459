"""Append-only JSONL record files that survive a kill at any moment.

The evaluation keeps two of them in its output folder:

- `generations.jsonl`: one record per generated completion, appended right after each generate call, so
  the expensive part of the work is kept even when a judge is down or the run is killed while scoring;
- `samples.jsonl`: the per-sample results (prompt, completion, extracted answer, score, judge verdict) and
  the rows that could not be evaluated (invalid row, unreadable video), each with its reason.

A record file is a log: when an id appears more than once, its LAST record is the current one (an error
retried by a later run, a completion scored after a judge outage). Each batch is written with one `write`
of whole lines, then flushed and fsync'ed, so a kill loses at most the batch in flight. A kill in the
middle of a write can leave a torn last line; `load` truncates it (it held no complete record) so the next
append starts on a fresh line. A bad line anywhere else is a real corruption and raises, naming the line.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)


class RecordFileError(RuntimeError):
    """A record file has a corrupt line that is not a torn last line."""


class RecordFile:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()  # the scoring thread and the main thread append to one file

    def load(self) -> dict[str, dict]:
        """The current (last) record of every id; repairs a torn last line first."""
        latest: dict[str, dict] = {}
        if not self.path.is_file():
            return latest
        self._repair_tail()
        with open(self.path, "r", encoding="utf-8") as f:
            for lineno, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise RecordFileError(f"{self.path}: line {lineno} is not valid JSON ({exc.msg}); "
                                          "fix or remove it, or rerun with --overwrite") from exc
                if not isinstance(record, dict) or "id" not in record:
                    raise RecordFileError(f"{self.path}: line {lineno} is not a record with an id")
                latest[str(record["id"])] = record
        return latest

    def append(self, records: Iterable[dict]) -> int:
        """Append records as whole lines in one write; flushed and fsync'ed before returning."""
        lines = "".join(json.dumps(r, ensure_ascii=False, default=_jsonable) + "\n" for r in records)
        if not lines:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
        return lines.count("\n")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _repair_tail(self) -> None:
        with open(self.path, "rb+") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            # Find the last newline; everything after it is a torn record.
            pos = size - 1
            chunk = 4096
            while pos > 0:
                start = max(0, pos - chunk)
                f.seek(start)
                data = f.read(pos - start)
                idx = data.rfind(b"\n")
                if idx >= 0:
                    keep = start + idx + 1
                    break
                pos = start
            else:
                keep = 0
            log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted write",
                        self.path, size - keep)
            f.truncate(keep)


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)
