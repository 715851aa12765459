"""Checkpoints that are whole or ignored, and resumes that restore every weight.

Saving (`CheckpointMixin._save_checkpoint`, around the Trainer's own save): a folder left at the same step by
a save that did not finish is removed first; once every process has written its part (DeepSpeed shards
included: a barrier), the main process writes `COMPLETE_MARKER` (atomically, fsynced), and only then are
older checkpoints rotated out (`save_total_limit`), so a failed save never costs the last good one. A
checkpoint without the marker was cut short (a kill, a full disk) and `--resume_from_checkpoint true` never
picks it (`latest_complete`). A full disk is reported as such ("no space left on device"), whatever layer
raised it (torch's own writer included: `save_io.py`).

Loading (`CheckpointMixin._load_from_checkpoint`): transformers 5.17's Trainer loads a plain (no DeepSpeed,
no FSDP, no PEFT) checkpoint with `load_state_dict(strict=False)`, but `save_pretrained` wrote Qwen2.5-VL's
legacy key names (`visual.*`, `model.layers.*`) while the modules are `model.visual.*`,
`model.language_model.*`: only `lm_head` loaded and the rest silently stayed at the base weights. Here the
keys go through transformers' own conversion mapping for the model class (what `from_pretrained` applies),
and the load is strict: a missing or unexpected key is an error that names the keys. DeepSpeed and PEFT
checkpoints keep the Trainer's loaders (exact), whose load results are checked the same way. A CPU DDP
resume can also load its optimizer state (`allow_indexed_cpu_map_location`).
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from .save_io import errno_preserving_saves

log = logging.getLogger(__name__)

COMPLETE_MARKER = "versavid_checkpoint_complete.json"
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
_DISK_FULL_TEXT = ("no space left on device", "storagefull", "disk quota exceeded")


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read as a whole; the message says which one and why."""


# ------------------------------------------------------------------ which checkpoints count ---------
def checkpoint_dirs(output_dir: str) -> list[str]:
    """`checkpoint-<step>` folders of `output_dir`, oldest step first (complete or not)."""
    if not os.path.isdir(output_dir):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(output_dir)
             if (m := _CHECKPOINT_DIR.match(name)) and os.path.isdir(os.path.join(output_dir, name))]
    return [os.path.join(output_dir, name) for _, name in sorted(found)]


def is_complete(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, COMPLETE_MARKER))


def latest_complete(output_dir: str) -> Optional[str]:
    """The newest checkpoint whose save finished (None if there is none)."""
    done = [d for d in checkpoint_dirs(output_dir) if is_complete(d)]
    return done[-1] if done else None


def incomplete(output_dir: str) -> list[str]:
    return [d for d in checkpoint_dirs(output_dir) if not is_complete(d)]


def mark_complete(folder: str, info: dict[str, Any]) -> None:
    """Write the completion marker atomically (temporary file, fsync, rename, fsync of the folder)."""
    path = os.path.join(folder, COMPLETE_MARKER)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ save errors --------------------
def _causes(err: BaseException) -> Iterable[BaseException]:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def is_disk_full(err: BaseException) -> bool:
    """True when `err` (or its cause) is ENOSPC/EDQUOT, also when a library wrapped it in its own error
    (safetensors reports `StorageFull`, torch's writer a RuntimeError with the OS message)."""
    for e in _causes(err):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(e).lower() for text in _DISK_FULL_TEXT):
            return True
    return False


def disk_full_error(folder: str, err: BaseException) -> CheckpointError:
    try:
        free = f"{shutil.disk_usage(os.path.dirname(folder) or '.').free / 2**20:.0f} MiB free now"
    except OSError:
        free = "free space unknown"
    return CheckpointError(
        f"no space left on device while saving checkpoint {folder} ({free}). That checkpoint is incomplete "
        "and --resume_from_checkpoint true will not use it; free some space (or lower save_total_limit, or "
        f"save elsewhere) and resume from the last complete checkpoint. Cause: {err}"
    )


# ------------------------------------------------------------------ strict full-weight loading -----
def _weights_files(folder: str) -> Optional[list[str]]:
    """The model weight files of a checkpoint (single or sharded, safetensors or torch), or None."""
    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if os.path.isfile(os.path.join(folder, single)):
            return [os.path.join(folder, single)]
        if os.path.isfile(os.path.join(folder, index)):
            shards = json.loads(Path(folder, index).read_text())["weight_map"].values()
            return [os.path.join(folder, s) for s in sorted(set(shards))]
    return None


def read_weights(files: list[str]) -> dict[str, "torch.Tensor"]:
    import torch
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for path in files:
        if path.endswith(".safetensors"):
            state.update(load_file(path, device="cpu"))
        else:
            state.update(torch.load(path, map_location="cpu", weights_only=True))
    return state


def to_model_keys(model, state: dict[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """Checkpoint keys renamed to the model's own, with the conversion mapping `from_pretrained` applies to
    this model class (e.g. Qwen2.5-VL's `visual.*` -> `model.visual.*`)."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, rename_source_key

    transforms = get_model_conversion_mapping(model)
    renamings = [t for t in transforms if not isinstance(t, WeightConverter)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    own = model.state_dict()
    out = {}
    for key, tensor in state.items():
        new, converted = rename_source_key(key, renamings, converters, model.base_model_prefix, own)
        if converted is not None:
            raise CheckpointError(f"checkpoint key {key!r} needs a tensor conversion ({converted}) that resume "
                                  "does not apply; load this checkpoint with from_pretrained instead")
        out[new] = tensor
    return out


def _tied_keys(model) -> set[str]:
    """Parameters tied to another (restored with it, so a checkpoint may leave them out)."""
    return set(getattr(model, "all_tied_weights_keys", None) or {})


def check_load_result(what: str, missing: Iterable[str], unexpected: Iterable[str], tied: set[str]) -> None:
    """Raise `CheckpointError` naming every key a checkpoint lacks or has in excess (tied ones allowed)."""
    missing = sorted(set(missing) - tied)
    unexpected = sorted(set(unexpected))
    if missing or unexpected:
        def show(keys):
            return ", ".join(keys[:20]) + (f" ... ({len(keys)} in all)" if len(keys) > 20 else "")

        parts = ([f"{len(missing)} missing: {show(missing)}"] if missing else []) + (
            [f"{len(unexpected)} unexpected: {show(unexpected)}"] if unexpected else [])
        raise CheckpointError(f"{what} does not match the model ({'; '.join(parts)}); refusing to "
                              "resume with weights partly from the checkpoint and partly from the base model")


def load_full_weights(model, folder: str) -> None:
    """Load a full-model checkpoint into `model`: every tensor, keys converted, strictly."""
    files = _weights_files(folder)
    if files is None:
        raise CheckpointError(f"checkpoint {folder} has no model weights (model.safetensors or an index)")
    state = to_model_keys(model, read_weights(files))
    expected = set(model.state_dict())
    tied = _tied_keys(model)
    what = f"checkpoint {folder}"
    check_load_result(what, expected - set(state), set(state) - expected, tied)
    result = model.load_state_dict(state, strict=False)
    check_load_result(what, result.missing_keys, result.unexpected_keys, tied)
    if tied & (expected - set(state)):
        model.tie_weights()
    log.info("restored all %d tensors of the model from %s", len(state), folder)


def _restore_on_indexed_cpu(storage, location: str):
    return storage if location.startswith("cpu:") else None


def allow_indexed_cpu_map_location() -> None:
    """Let `torch.load(..., map_location=torch.device("cpu", i))` work (idempotent).

    Why: with several CPU processes accelerate's device is `cpu:<local index>`, transformers passes it as
    `map_location` when it loads the optimizer state on resume, and torch only restores to "cpu", so a DDP
    resume on CPU died with "don't know how to restore data location ... (tagged with cpu:0)". torch's own
    extension point (`register_package`) adds the rule; storages stay on the CPU."""
    import torch.serialization as ser

    if not any(entry[2] is _restore_on_indexed_cpu for entry in ser._package_registry):
        ser.register_package(30, lambda obj: None, _restore_on_indexed_cpu)


# ------------------------------------------------------------------ the Trainer side ----------------
class CheckpointMixin:
    """Mixed into the GRPO trainer (before `GRPOTrainer`): complete-or-ignored saves, strict full resumes."""

    def _save_checkpoint(self, model, trial):
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

        run_dir = self._get_output_dir(trial=trial)
        folder = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save and os.path.isdir(folder):
            log.warning("removing %s (left by an earlier save at this step) before saving it again", folder)
            shutil.rmtree(folder)
        self.accelerator.wait_for_everyone()
        # Older checkpoints are rotated out only once this one is complete (the Trainer would do it before).
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            with errno_preserving_saves():  # a full disk is named as such, whichever file it hits
                super()._save_checkpoint(model, trial)
            self.accelerator.wait_for_everyone()  # every process's part (DeepSpeed shards) is written
            if self.args.should_save:
                mark_complete(folder, {"global_step": self.state.global_step, "time": time.time(),
                                       "world_size": self.args.world_size, "host": socket.gethostname()})
        except Exception as err:
            if is_disk_full(err):
                raise disk_full_error(folder, err) from err
            raise
        finally:
            self.args.save_total_limit = limit
        if self.args.should_save:
            rotate_checkpoints(output_dir=run_dir, save_total_limit=limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        from transformers.trainer_utils import _is_peft_model

        model = self.model if model is None else model
        plain = not (self.is_deepspeed_enabled or self.is_fsdp_enabled or _is_peft_model(model))
        if plain and _weights_files(resume_from_checkpoint) is not None:
            load_full_weights(model, resume_from_checkpoint)
            return
        super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_optimizer_and_scheduler(self, checkpoint):
        # Reason: the optimizer state of a CPU DDP run is loaded with map_location `cpu:<index>`.
        allow_indexed_cpu_map_location()
        super()._load_optimizer_and_scheduler(checkpoint)

    def _issue_warnings_after_load(self, load_result):
        # Reason: the Trainer only warns about missing/unexpected keys; a partial load must stop the run.
        check_load_result("the checkpoint being loaded", load_result.missing_keys, load_result.unexpected_keys,
                          _tied_keys(self.model))
