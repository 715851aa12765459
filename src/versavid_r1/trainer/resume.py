"""Resume exactly: a run interrupted at a checkpoint and resumed equals the run that never stopped, step for step.

The Trainer restores the weights, the optimizer, the scheduler, the RNG states (python, numpy, torch) and its
own step counter, and skips the batches already trained in the current epoch. Three more pieces of state
decide what a GRPO step does; without them a resumed demo drew other problem types at its first step:

- **The sampler's epoch.** TRL's `RepeatSampler` draws each epoch's order from one generator seeded once, so
  epoch e gets the (e+1)-th permutation only if the sampler iterated e times before. A resumed run builds a
  new sampler and iterated it once: a run resumed in epoch 3 replayed epoch 0's order. `EpochRepeatSampler`
  takes the epoch the Trainer sets (`set_epoch`) and draws that epoch's permutation, the same one a run that
  never stopped draws.
- **TRL's micro-step counter and its buffer of generated completions.** With `num_iterations` > 1 (or
  `steps_per_generation` > 1) a generation batch serves several steps; TRL counts them with `_step`, which a
  resume reset to 0, and keeps the batch in `_buffered_inputs`, which a resume lost. Both are saved with each
  checkpoint (`resume_state_<process>.pt`, next to the Trainer's `rng_state.pth`) and restored where the
  Trainer restores the RNG states: a checkpoint taken between two uses of a batch resumes with that batch.
- **The row guard's failed rows** (`row_guard.py`): a row that failed before the checkpoint is replaced again
  at once, not retried and counted a second time.

The file is read with `torch.load(weights_only=True)`: tensors, containers and the trainer's own
`PromptVideoInputs` only. A checkpoint without it (written before this module) resumes as before, with a
warning that the resumed steps may differ.

A run resumed from a checkpoint at `max_steps` or beyond trains nothing and says so (the Trainer ran one
more step when `max_steps` fell inside an epoch).
"""
from __future__ import annotations

import logging
import os
import pickle
from dataclasses import asdict
from typing import Optional

import torch
from trl.trainer.utils import RepeatSampler

from .row_guard import FailedRow
from .video_inputs import PromptVideoInputs

log = logging.getLogger(__name__)


def resume_state_file(folder: str, process_index: int) -> str:
    return os.path.join(folder, f"resume_state_{process_index}.pt")


class EpochRepeatSampler(RepeatSampler):
    """TRL's `RepeatSampler` whose order depends on the epoch alone: epoch e (set by the Trainer through
    `set_epoch`, else counted) gets the (e+1)-th permutation of a generator seeded with `seed`, which is what
    the upstream sampler gives when it is iterated once per epoch from the start."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch: Optional[int] = None
        self._iterations = 0

    @classmethod
    def like(cls, sampler: RepeatSampler) -> "EpochRepeatSampler":
        return cls(sampler.data_source, sampler.mini_repeat_count, batch_size=sampler.batch_size,
                   repeat_count=sampler.repeat_count, shuffle=sampler.shuffle, seed=sampler.seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        epoch = self._iterations if self.epoch is None else self.epoch
        self._iterations = epoch + 1
        if self.shuffle and self.seed is not None:
            self.generator = torch.Generator()
            self.generator.manual_seed(self.seed)
            for _ in range(epoch):   # the permutations of the epochs before (cheap: one index per row)
                torch.randperm(self.num_samples, generator=self.generator)
        return super().__iter__()


class ResumeMixin:
    """Mixed into the GRPO trainer (before `GRPOTrainer`): see the module docstring."""

    _nothing_to_train = False

    def _get_train_sampler(self, dataset=None):
        sampler = super()._get_train_sampler(dataset)
        return EpochRepeatSampler.like(sampler) if type(sampler) is RepeatSampler else sampler

    def _generate_every(self) -> int:
        return self.args.steps_per_generation * self.num_iterations

    def _save_rng_state(self, output_dir: str) -> None:
        super()._save_rng_state(output_dir)
        state = {"trl_step": self._step,
                 "skipped_rows": [asdict(f) for f in self.row_guard.skipped.values()]}
        if self._step % self._generate_every() and self._buffered_inputs is not None:
            state["buffered_inputs"] = self._buffered_inputs   # a batch with uses left
        torch.save(state, resume_state_file(output_dir, self.args.process_index))

    def _load_rng_state(self, checkpoint: Optional[str]) -> None:
        super()._load_rng_state(checkpoint)
        if checkpoint is None:
            return
        path = resume_state_file(checkpoint, self.args.process_index)
        if not os.path.isfile(path):
            log.warning("%s has no %s (written before exact resume): TRL's step counter starts at 0 and the "
                        "resumed steps may differ from a run that never stopped", checkpoint, os.path.basename(path))
            return
        try:
            with torch.serialization.safe_globals([PromptVideoInputs]):
                state = torch.load(path, weights_only=True)
        except pickle.UnpicklingError as err:   # a type weights_only does not allow: resume as TRL would
            log.warning("cannot read %s (%s): TRL's step counter starts at 0 and the resumed steps may differ "
                        "from a run that never stopped", path, str(err).splitlines()[0])
            return
        self._step = int(state["trl_step"])
        self._buffered_inputs = state.get("buffered_inputs")
        self.row_guard.skipped = {f["key"]: FailedRow(**f) for f in state["skipped_rows"]}

    def _init_training_state(self, max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint,
                             trial):
        out = super()._init_training_state(max_steps, num_update_steps_per_epoch, num_train_epochs,
                                           resume_from_checkpoint, trial)
        self._nothing_to_train = resume_from_checkpoint is not None and self.state.global_step >= max_steps
        if self._nothing_to_train and self.is_world_process_zero():
            log.warning("%s is already at max_steps %d: nothing to train (raise --max_steps to train further)",
                        resume_from_checkpoint, max_steps)
        return out

    def _run_epoch(self, *args, **kwargs):
        # Reason: the Trainer's epoch loop runs one step before it checks max_steps.
        if self._nothing_to_train:
            self.control.should_training_stop = True
            return None
        return super()._run_epoch(*args, **kwargs)
