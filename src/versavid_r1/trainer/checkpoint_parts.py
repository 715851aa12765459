"""Is a checkpoint whole before a run resumes from it? Every part the resume restores, present and readable.

transformers' Trainer restores what it finds and quietly skips the rest: a checkpoint without
`optimizer.pt` or `scheduler.pt` resumed with a fresh Adam state and a schedule restarted from its first
step, exit 0, no log line; without `rng_state.pth` the sampling draws differ. `check_resumable` runs before
any model loads and names the first missing or unreadable part in one line (`IncompleteCheckpoint`):

- weights: `model.safetensors` (or its index and shards, or `pytorch_model.bin`); with LoRA
  `adapter_model.safetensors` and `adapter_config.json`; with DeepSpeed the `latest` file and its
  `global_step*` folder with the model states;
- optimizer: `optimizer.pt`; with DeepSpeed one `*optim_states.pt` per process;
- scheduler: `scheduler.pt` (DeepSpeed may keep it inside its own states: not required there);
- RNG: `rng_state.pth` for one process, `rng_state_<i>.pth` for each of several;
- trainer state: `trainer_state.json` (its step and log history).

"Readable": JSON parses, a safetensors header parses and its tensors fit in the file, a torch zip file has
its central directory (a file cut short by a kill or a full disk has not). Reading whole files (gigabytes of
optimizer state) is left to the load itself.

`weights_only=True` (`--resume_weights_only`) accepts a checkpoint whose optimizer, scheduler and RNG
parts are missing: the weights and trainer state are still required, and the returned note says what starts
fresh, for the log. Kept apart from `checkpoints.py` (saving, strict weight loading).
"""
from __future__ import annotations

import glob
import json
import os
import struct
import zipfile
from typing import Optional

from .checkpoints import CheckpointError

WEIGHTS, OPTIMIZER, SCHEDULER, RNG, TRAINER_STATE = "weights", "optimizer", "scheduler", "RNG state", "trainer state"
OPTIONAL_WITH_WEIGHTS_ONLY = (OPTIMIZER, SCHEDULER, RNG)
WEIGHTS_ONLY_FLAG = "--resume_weights_only true"


class IncompleteCheckpoint(CheckpointError):
    """A part of the checkpoint a resume needs is missing or unreadable; the message names it."""


# ------------------------------------------------------------------ readability of one file -----------
def _json_ok(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as f:
            json.load(f)
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _safetensors_ok(path: str) -> Optional[str]:
    """The header parses and the data it describes fits in the file (a cut file fails)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                return "header longer than the file"
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error) as exc:
        return f"{type(exc).__name__}: {exc}"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    return None if 8 + n + end <= size else f"cut short ({size} bytes, its header describes {8 + n + end})"


def _torch_ok(path: str) -> Optional[str]:
    """torch.save's zip archive: its central directory (at the end of the file) is intact."""
    try:
        with zipfile.ZipFile(path) as z:
            z.infolist()
    except (OSError, zipfile.BadZipFile) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _readable(path: str) -> Optional[str]:
    """None if `path` reads as its kind of file, else why not."""
    if os.path.getsize(path) == 0:
        return "empty file"
    if path.endswith(".json") or os.path.basename(path) == "latest":
        return None if os.path.basename(path) == "latest" else _json_ok(path)
    if path.endswith(".safetensors"):
        return _safetensors_ok(path)
    if path.endswith((".pt", ".pth", ".bin")):
        return _torch_ok(path)
    return None


# ------------------------------------------------------------------ the parts ---------------------------
def _weight_files(folder: str, peft: bool) -> list[str]:
    if peft:
        for name in ("adapter_model.safetensors", "adapter_model.bin"):
            if os.path.isfile(os.path.join(folder, name)):
                return [os.path.join(folder, name), os.path.join(folder, "adapter_config.json")]
        return [os.path.join(folder, "adapter_model.safetensors")]
    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if os.path.isfile(os.path.join(folder, single)):
            return [os.path.join(folder, single)]
        if os.path.isfile(os.path.join(folder, index)):
            try:
                with open(os.path.join(folder, index), encoding="utf-8") as f:
                    shards = sorted(set(json.load(f)["weight_map"].values()))
            except (OSError, ValueError, KeyError):
                return [os.path.join(folder, index)]
            return [os.path.join(folder, index)] + [os.path.join(folder, s) for s in shards]
    return [os.path.join(folder, "model.safetensors")]


def _deepspeed_files(folder: str, world_size: int) -> tuple[list[str], list[str]]:
    """(model-state files, optimizer-state files) of the DeepSpeed tag the `latest` file names."""
    latest = os.path.join(folder, "latest")
    if not os.path.isfile(latest):
        return [latest], []
    with open(latest, encoding="utf-8") as f:
        tag = os.path.join(folder, f.read().strip())
    models = sorted(glob.glob(os.path.join(tag, "*model_states.pt"))) or [os.path.join(tag, "mp_rank_00_model_states.pt")]
    optims = sorted(glob.glob(os.path.join(tag, "*optim_states.pt")))
    missing = [os.path.join(tag, f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt") for r in range(len(optims), world_size)]
    return [latest, *models], optims + missing


def resume_parts(folder: str, *, world_size: int = 1, deepspeed: bool = False,
                 peft: bool = False) -> dict[str, list[str]]:
    """The files a resume from `folder` reads, by part (module docstring)."""
    parts: dict[str, list[str]] = {}
    if deepspeed:
        models, optims = _deepspeed_files(folder, world_size)
        parts[WEIGHTS] = _weight_files(folder, peft) + models if peft else models
        parts[OPTIMIZER] = optims
    else:
        parts[WEIGHTS] = _weight_files(folder, peft)
        parts[OPTIMIZER] = [os.path.join(folder, "optimizer.pt")]
        parts[SCHEDULER] = [os.path.join(folder, "scheduler.pt")]
    names = ["rng_state.pth"] if world_size <= 1 else [f"rng_state_{i}.pth" for i in range(world_size)]
    parts[RNG] = [os.path.join(folder, n) for n in names]
    parts[TRAINER_STATE] = [os.path.join(folder, "trainer_state.json")]
    return parts


def check_resumable(folder: str, *, world_size: int = 1, deepspeed: bool = False, peft: bool = False,
                    weights_only: bool = False) -> Optional[str]:
    """Raise `IncompleteCheckpoint` naming the first missing or unreadable part of `folder`. Returns None, or,
    when `weights_only` let parts be missing, the note to log (what the resume does not restore)."""
    absent = []
    for part, files in resume_parts(folder, world_size=world_size, deepspeed=deepspeed, peft=peft).items():
        for path in files:
            why = "missing" if not os.path.isfile(path) else _readable(path)
            if why is None:
                continue
            if weights_only and part in OPTIONAL_WITH_WEIGHTS_ONLY:
                absent.append(part)
                break
            hint = (f"; pass {WEIGHTS_ONLY_FLAG} to resume from its weights alone (fresh optimizer, restarted "
                    "schedule)" if part in OPTIONAL_WITH_WEIGHTS_ONLY else "")
            state = why if why == "missing" else f"unreadable ({why})"
            raise IncompleteCheckpoint(f"checkpoint {folder} cannot be resumed: its {part} "
                                       f"({os.path.relpath(path, folder)}) is {state}; resume from another "
                                       f"checkpoint{hint}")
    if not absent:
        return None
    return (f"resuming the weights of {folder} only ({WEIGHTS_ONLY_FLAG}): its "
            f"{', '.join(dict.fromkeys(absent))} {'is' if len(set(absent)) == 1 else 'are'} not in the checkpoint "
            "and start fresh (a new optimizer state, the learning-rate schedule from its first step, new random "
            "draws)")
