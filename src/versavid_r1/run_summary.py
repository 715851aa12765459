"""The lines a finished training run prints: where the model, the checkpoints and the logs really are.

The log folders are read from the loggers that ran, not guessed: TensorBoard's writer folder (the Trainer's
callback picks `<output_dir>/runs/<date>_<host>` unless TENSORBOARD_LOGGING_DIR says otherwise), the wandb
run's page and its local files (`./wandb/` or WANDB_DIR; an offline run is uploaded with `wandb sync`).
A run that reported to nothing still has its whole log history in `trainer_state.json`.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable, Optional


def _wandb_run() -> Optional[Any]:
    try:
        import wandb
    except ImportError:
        return None
    return wandb.run


def log_locations(callbacks: Iterable[Any], out: Path, wandb_run: Optional[Any] = None) -> list[str]:
    """`label: where` lines for the loggers among `callbacks` (the Trainer's), then the log history file."""
    from transformers.integrations import TensorBoardCallback, WandbCallback

    lines = []
    for cb in callbacks:
        if isinstance(cb, TensorBoardCallback) and getattr(cb, "logging_dir", None):
            lines.append(f"tensorboard:  {Path(cb.logging_dir).resolve()} (tensorboard --logdir {out})")
        elif isinstance(cb, WandbCallback):
            run = wandb_run if wandb_run is not None else _wandb_run()
            if run is None:
                continue
            files = Path(run.dir).resolve().parent   # <wandb dir>/(offline-)run-<time>-<id>
            page = run.url or f"offline (upload with: wandb sync {files})"
            lines.append(f"wandb:        {page}; local files {files}")
    lines.append(f"log history:  {out}/trainer_state.json (every logged step; {_python()} -m versavid_r1.plot {out})")
    return lines


def _python() -> str:
    """This interpreter as a command to paste: relative to the working folder when inside it (.venv/bin/python)."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def closing_summary(trainer, out: Path, seconds: float, log_completions: bool) -> str:
    """The block printed when training is done (main process)."""
    lines = [f"Training done in {seconds:.0f} s ({trainer.state.global_step} steps).",
             f"final model:  {out}",
             f"checkpoints:  {out}/checkpoint-*",
             *log_locations(trainer.callback_handler.callbacks, out)]
    if log_completions:
        lines.append(f"completions:  {out}/completions/*.parquet")
    lines.append(f"run settings: {out}/versavid_run.json")
    return "\n" + "\n  ".join(lines)
