"""What a run that starts from step 0 does with what an earlier run left in its output folder.

Refusals that cannot cost a run (`plan_fresh_start`, before the model loads):

- checkpoints of an earlier run and no `--resume_from_checkpoint`: refused, naming the flag that resumes
  and `--overwrite_output_dir true`;
- only checkpoints whose save never finished (a kill during the first save): `--resume_from_checkpoint
  auto` starts fresh and sets them aside (renamed `incomplete-checkpoint-<step>-<time>`, kept for
  inspection, never picked by a resume); without it the refusal says so (`true` has nothing to resume);
- a finished run without any checkpoint (`save_strategy: no`, or its checkpoints deleted): refused like
  one with checkpoints, since starting again would overwrite its final model, trainer state and record;
- `--overwrite_output_dir true`: everything an earlier run wrote there is removed first (`run_outputs`:
  checkpoints, set-aside incomplete ones, the final model and processor files, trainer_state.json, the run
  record, completion samples, TensorBoard logs, the reward curve, the model card), so nothing of it mixes
  with the new run's; other files of the folder (the launcher's train.log, a warm start) are kept.

A run resuming from a checkpoint needs none of this (`plan_fresh_start` returns an empty plan).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Optional

from versavid_r1.run_record import RUN_INFO_FILE

from .checkpoints import checkpoint_dirs, is_complete
from .run_guard import OutputDirError

RESUME_FLAG = "--resume_from_checkpoint true"
AUTO_FLAG = "--resume_from_checkpoint auto"
OVERWRITE_FLAG = "--overwrite_output_dir true"
INCOMPLETE_PREFIX = "incomplete-"

# Written by a finished run (save_model, save_state, the processor): the folder holds a run's final model.
FINISHED_MARKERS = ("trainer_state.json", "model.safetensors", "model.safetensors.index.json",
                    "adapter_model.safetensors", "pytorch_model.bin")
# Everything else a run writes at the top of its output folder (transformers, TRL, this project).
RUN_FILES = (
    "config.json", "generation_config.json", "training_args.bin", "chat_template.jinja", "chat_template.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
    "merges.txt", "preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json",
    "adapter_config.json", "all_results.json", "train_results.json", "eval_results.json", RUN_INFO_FILE,
    "reward_curve.png", "README.md",
)
RUN_FOLDERS = ("completions", "runs")


def finished_run(output_dir: str) -> list[str]:
    """The files that show a finished run in `output_dir` (empty: none)."""
    return [n for n in FINISHED_MARKERS if os.path.isfile(os.path.join(output_dir, n))]


def run_outputs(output_dir: str) -> list[str]:
    """Every path an earlier run wrote in `output_dir` (see the module docstring). The model card
    (README.md) counts only in a folder that holds a run's final model."""
    if not os.path.isdir(output_dir):
        return []
    names = set(os.listdir(output_dir))
    found = list(checkpoint_dirs(output_dir))
    found += [os.path.join(output_dir, n) for n in sorted(names) if n.startswith(INCOMPLETE_PREFIX + "checkpoint-")]
    files = [n for n in (*FINISHED_MARKERS, *RUN_FILES) if n in names]
    if "README.md" in files and not finished_run(output_dir):
        files.remove("README.md")
    shards = sorted(n for n in names if n.startswith("model-") and n.endswith(".safetensors"))
    folders = [n for n in RUN_FOLDERS if n in names]
    return found + [os.path.join(output_dir, n) for n in (*files, *shards, *folders)]


@dataclass
class FreshStartPlan:
    """What to do to the output folder before a run from step 0 writes in it (main process only)."""

    remove: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)

    def apply(self) -> list[str]:
        """Carry the plan out; returns one log line per action."""
        lines = []
        for path in self.set_aside:
            step = os.path.basename(path)
            target = os.path.join(os.path.dirname(path), f"{INCOMPLETE_PREFIX}{step}-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(path, target)
            lines.append(f"{step} was never completely saved: set aside as {target} (not used for resuming)")
        for path in self.remove:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)
        if self.remove:
            shown = ", ".join(os.path.basename(p) for p in self.remove[:8]) + (" ..." if len(self.remove) > 8 else "")
            lines.append(f"--overwrite_output_dir: removed {len(self.remove)} output(s) of the earlier run ({shown})")
        return lines


def plan_fresh_start(output_dir: str, resume: Optional[str], overwrite: bool, auto: bool = False) -> FreshStartPlan:
    """The plan for a run that does not resume, or `OutputDirError` when starting over would cost an earlier
    run's work (module docstring). `auto`: `--resume_from_checkpoint auto` found nothing to resume."""
    if resume:
        return FreshStartPlan()
    if overwrite:
        return FreshStartPlan(remove=run_outputs(output_dir))
    found = checkpoint_dirs(output_dir)
    complete = [d for d in found if is_complete(d)]
    names = ", ".join(os.path.basename(d) for d in found[-3:])
    if complete:
        raise OutputDirError(
            f"{output_dir} already holds {len(found)} checkpoint(s) ({names}) and --resume_from_checkpoint is not "
            f"set: starting again from step 0 would overwrite them. Resume with {RESUME_FLAG}, or start over "
            f"with {OVERWRITE_FLAG} (removes them), or pass another --output_dir"
        )
    finished = finished_run(output_dir)
    if finished:
        raise OutputDirError(
            f"{output_dir} holds a finished run ({', '.join(finished)}) and no checkpoint to resume from: starting "
            f"again from step 0 would overwrite its model and records. Start over with {OVERWRITE_FLAG} (removes "
            "the earlier run's outputs), or pass another --output_dir"
        )
    if found and not auto:
        raise OutputDirError(
            f"{output_dir} holds only incomplete checkpoint(s) ({names}): their save never finished (a kill, a full "
            f"disk), so there is nothing to resume. Start fresh with {AUTO_FLAG} (sets them aside), or with "
            f"{OVERWRITE_FLAG} (removes them), or pass another --output_dir"
        )
    return FreshStartPlan(set_aside=found)
