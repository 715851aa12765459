"""The training entry (`python -m versavid_r1.grpo` arguments), with one video turned into a FIFO once the
data has been validated: a mount that hangs after the check (every later open or read of that file blocks).

    python tests/hung_mount_run.py VIDEO -- <training flags>          (or under torchrun)

Only the file changes; the entry, the validation and the trainer run unmodified."""
from __future__ import annotations

import os
import sys


def main() -> None:
    video, argv = sys.argv[1], sys.argv[3:]
    from versavid_r1 import grpo
    from versavid_r1.trainer import preflight

    validate = preflight.load_training_data

    def validate_then_hang(*args, **kwargs):
        out = validate(*args, **kwargs)
        import torch.distributed as dist

        multi = dist.is_available() and dist.is_initialized()
        if multi:
            dist.barrier()  # every rank has validated (and decoded) its share
        if not multi or dist.get_rank() == 0:
            os.remove(video)
            os.mkfifo(video)
        if multi:
            dist.barrier()
        return out

    preflight.load_training_data = validate_then_hang
    grpo.main(argv, exit_fast=True)  # as `python -m versavid_r1.grpo` runs it


if __name__ == "__main__":
    main()
