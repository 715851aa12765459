"""One training run per output folder, no silent restart over old checkpoints, interruptions named as such.

- `OutputDirLock`: the main process holds an exclusive `flock` on `<output_dir>/.versavid_train.lock` for
  the whole run; a second trainer on the same folder stops at once with the holder's pid, host and start
  time (the kernel drops the lock when the holder dies, so a crashed run never leaves it stuck).
- what a run from step 0 does with an earlier run's outputs (refusals, `--overwrite_output_dir`) is in
  `fresh_start.py`.
- `Interrupted`: Ctrl-C (SIGINT) or SIGTERM during training, with the step reached, so the entry reports
  an interruption and how to resume instead of a failure traceback. The handler also wakes every thread
  waiting on a video read (`versavid_r1.data.read_deadline`), and `exit_now` ends the process once the
  interruption is reported, without the interpreter's teardown (seconds with torch loaded, more on a busy
  machine), so a signal ends a run within seconds whatever its threads are doing.
"""
from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, NoReturn, Optional

from versavid_r1.data.read_deadline import abandon_waits

LOCK_NAME = ".versavid_train.lock"


class OutputDirError(RuntimeError):
    """The output folder cannot be used as asked; the message says what to pass instead."""


class Interrupted(KeyboardInterrupt):
    """Training was stopped by a signal (not a failure). A KeyboardInterrupt, so that no library's
    `except Exception` swallows it."""

    def __init__(self, signum: int, step: Optional[int] = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.step = step

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class OutputDirLock:
    """Exclusive lock of an output folder for the life of a run (`with OutputDirLock(path): ...`)."""

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, LOCK_NAME)
        self._file = None

    def __enter__(self) -> "OutputDirLock":
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown process"
            f.close()
            raise OutputDirError(
                f"{os.path.dirname(self.path)} is being written by another training run ({holder}); two runs "
                "cannot share an output_dir: wait for it, stop it, or pass another --output_dir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def exit_now(code: int) -> NoReturn:
    """End the process with `code` at once: Python's exit handlers run (log files, trackers flush) and
    standard streams are flushed, but modules and threads are not torn down (a reader thread may be stuck
    in the kernel, and tearing down torch takes seconds). For entry points, after an interruption."""
    try:
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


@contextmanager
def signals_interrupt(signums=(signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM raise `Interrupted` in the main thread (restored afterwards). Off
    the main thread (where Python allows no handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupted(signum, _frame):
        abandon_waits()  # threads waiting on a video read that may never return stop waiting now
        raise Interrupted(signum)

    previous = {s: signal.signal(s, raise_interrupted) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
