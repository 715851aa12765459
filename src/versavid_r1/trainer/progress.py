"""One console line per logging step instead of transformers' dump of every metric.

transformers prints each log entry as a dict (40-odd metrics per GRPO step, several terminal lines).
`use_compact_logging(trainer)` swaps its printing callback for one that keeps the progress bar and prints

    step  12/60  reward 0.843  format 0.75 | MCQA 0.50  DarkEventInfer 1.25  MixVidQA 0.25  caption 1.10 | 2.1 s

(per problem type present in the step's batch; judge failures and skipped items are added when there are
any; a step that reuses the last completions, TRL's `num_iterations` > 1, prints nothing). Every metric still goes to the configured loggers (TensorBoard) and to `trainer_state.json`.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from transformers.trainer_callback import PrinterCallback, ProgressCallback

from versavid_r1.tasks import PROBLEM_TYPES

_TYPE_MEAN = re.compile(r"^rewards/(?P<type>[^/]+)/mean$")


def _types(logs: dict[str, Any]) -> list[str]:
    """Problem types with a reward in `logs` (those with a `/format` entry: reward functions have none)."""
    found = [m["type"] for k in logs if (m := _TYPE_MEAN.match(k)) and f"rewards/{m['type']}/format" in logs]
    return [t for t in PROBLEM_TYPES if t in found] + [t for t in found if t not in PROBLEM_TYPES]


def _num(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def reward_line(step: int, max_steps: int, logs: dict[str, Any]) -> Optional[str]:
    """The console line of a training log entry with a reward; None for any other entry."""
    if not isinstance(logs.get("reward"), (int, float)):
        return None
    width = len(str(max_steps))
    parts = [f"step {step:>{width}}/{max_steps}", f"reward {_num(logs['reward'], '.3f')}",
             f"format {_num(logs.get('rewards/format/mean'), '.2f')}"]
    types = "  ".join(f"{t} {_num(logs[f'rewards/{t}/mean'], '.2f')}" for t in _types(logs))
    line = "  ".join(parts) + (f" | {types}" if types else "")
    problems = {k: logs.get(f"judge/{k}") for k in ("failures", "skipped")}
    if any(isinstance(v, (int, float)) and v > 0 for v in problems.values()):
        line += " | judge " + " ".join(f"{k} {_num(v, 'g')}" for k, v in problems.items())
    if isinstance(logs.get("step_time"), (int, float)):
        line += f" | {logs['step_time']:.1f} s"
    return line


def log_line(step: int, max_steps: int, logs: dict[str, Any]) -> Optional[str]:
    """The console line of any log entry: `reward_line` for a step with new completions; None for a step
    that reuses them (TRL's `num_iterations` > 1: no reward to show, the progress bar counts it); the
    end-of-training summary and evaluations as compact `key value` pairs."""
    line = reward_line(step, max_steps, logs)
    if line is not None:
        return line
    if "loss" in logs and "train_runtime" not in logs and not any(k.startswith("eval_") for k in logs):
        return None
    return "  ".join(f"{k} {_num(v, '.4g') if isinstance(v, float) else v}" for k, v in logs.items())


class CompactProgressCallback(ProgressCallback):
    """transformers' progress bar, with one line per log entry (see the module docstring)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        line = log_line(state.global_step, state.max_steps, logs or {})
        if state.is_world_process_zero and self.training_bar is not None and line:
            self.training_bar.write(line)


class CompactPrinterCallback(PrinterCallback):
    """The same lines when the progress bar is off (`disable_tqdm`)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        line = log_line(state.global_step, state.max_steps, logs or {})
        if state.is_world_process_zero and line:
            print(line, flush=True)


def use_compact_logging(trainer) -> None:
    """Replace the trainer's printing callback (progress bar or printer) by its compact twin."""
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(CompactProgressCallback())
    elif trainer.pop_callback(PrinterCallback) is not None:
        trainer.add_callback(CompactPrinterCallback())
