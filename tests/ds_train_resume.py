"""Test helper: train, then resume at the checkpoint's own step, in ONE process (one DeepSpeed start-up).

    python tests/ds_train_resume.py RECORD.json -- <training entry flags>
    torchrun --nproc_per_node 2 tests/ds_train_resume.py RECORD.json -- <flags>   (each rank does both)

1. runs the training entry with the flags (it must save a checkpoint at its last step);
2. removes the final `model.safetensors` and runs the entry again with `--resume_from_checkpoint true`
   (no step is left to train), so the final save holds exactly what the resume loaded;
3. records every call of Qwen2.5-VL's `get_rope_index` (the dtype and values of `second_per_grid_ts`, and
   whether it came from a log-prob forward, `_get_per_token_logps_and_entropies`, or from generation) into
   RECORD.json.
"""
from __future__ import annotations

import json
import os
import sys

import torch

import versavid_r1  # noqa: F401  (installs the rope-index workaround before transformers loads)
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl

CALLS: list[dict] = []
LOGPROB_FORWARD = "_get_per_token_logps_and_entropies"


def _in_logprob_forward() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == LOGPROB_FORWARD:
            return True
        frame = frame.f_back
    return False


def record(get_rope_index):
    def wrapper(self, *args, **kwargs):
        seconds = kwargs.get("second_per_grid_ts")
        if isinstance(seconds, torch.Tensor):
            CALLS.append({"dtype": str(seconds.dtype), "values": seconds.float().tolist(),
                          "logprob_forward": _in_logprob_forward()})
        return get_rope_index(self, *args, **kwargs)

    return wrapper


def main() -> None:
    record_path, sep, *flags = sys.argv[1:]
    assert sep == "--", __doc__
    cls = modeling_qwen2_5_vl.Qwen2_5_VLModel
    cls.get_rope_index = record(cls.get_rope_index)
    from versavid_r1.grpo import main as entry

    out = flags[flags.index("--output_dir") + 1]
    main_process = int(os.environ.get("RANK", "0")) == 0
    entry(flags)
    if main_process:  # the only writer of the final model
        os.remove(os.path.join(out, "model.safetensors"))
    entry(flags + ["--resume_from_checkpoint", "true"])
    if main_process:
        with open(record_path, "w") as f:
            json.dump(CALLS, f)


if __name__ == "__main__":
    main()
