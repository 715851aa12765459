"""Keep the G completions of a prompt in one micro-batch when TRL cuts a generation batch into micro-batches.

TRL 1.16's `_prepare_inputs` shuffles the ROWS of a generation batch (`shuffle_sequence_dict`) and then cuts
it into `steps_per_generation` micro-batches, so a micro-batch generally holds pieces of several groups and
the shared-prefix log-prob forward (`shared_prefix.py`) has little to share. `shuffle_groups` permutes whole
groups instead: with `per_device_train_batch_size` a multiple of `num_generations`, every micro-batch then
holds whole groups.

Why training is unchanged (see docs/deviations.md, "Micro-batches hold whole groups"):
- Advantages are computed over the whole group before any shuffle, so a row's loss term is the same
  whichever micro-batch it lands in.
- Within one optimizer step the gradient is the sum of its micro-batches' gradients. For the loss types
  whose per-row weight does not depend on the other rows of the micro-batch (`grpo`, `sapo`, `luspo`: a
  mean over micro-batches of equal size; `dr_grpo`: a fixed denominator; `dapo`, `cispo`, `vespo`: the
  generation batch's token count) that sum is the same for any split of the step's rows into micro-batches.
  Only `bnpo` divides by each micro-batch's own token count, so its rows are weighted by their micro-batch.
- When one generation batch feeds several optimizer steps (`steps_per_generation` > gradient accumulation,
  or `num_iterations` > 1), both shuffles give every row the same chance to be in each step, so the expected
  update is the same; a step then sees fewer distinct prompts, as when a step holds whole groups by design.
- With the paper's settings (`steps_per_generation` 1, 8 rows = one group per process) both shuffles give
  the same micro-batch.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch


def group_permutation(num_rows: int, group_size: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A random order of whole groups of `group_size` consecutive rows (TRL's layout), rows kept in place."""
    if group_size < 1 or num_rows % group_size:
        raise ValueError(f"{num_rows} rows are not whole groups of {group_size}")
    groups = torch.randperm(num_rows // group_size, generator=generator)
    return (groups[:, None] * group_size + torch.arange(group_size)[None]).reshape(-1)


def permute_rows(batch: dict[str, Any], permutation: Sequence[int]) -> dict[str, Any]:
    """Every per-row value of `batch` in the order of `permutation` (0-dim tensors and None kept), like TRL's
    `shuffle_sequence_dict` with a given permutation."""
    index = torch.as_tensor(permutation, dtype=torch.long)

    def permute(value):
        if value is None or (isinstance(value, torch.Tensor) and value.ndim == 0):
            return value
        if isinstance(value, torch.Tensor):
            return value[index.to(value.device)]
        return [value[i] for i in index.tolist()]

    return {key: permute(value) for key, value in batch.items()}


def shuffle_groups(batch: dict[str, Any], group_size: int) -> dict[str, Any]:
    """`batch` with its groups of `group_size` consecutive rows in a random order (TRL's shuffle, by group)."""
    num_rows = len(next(v for v in batch.values() if v is not None))
    return permute_rows(batch, group_permutation(num_rows, group_size))
