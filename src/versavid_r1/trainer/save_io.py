"""Checkpoint writes that say why they failed: a full disk is named as such on every file of a save.

`torch.save(obj, path)` writes through torch's own C++ stream: when the disk fills up (writing
`optimizer.pt`, `scheduler.pt`, `rng_state.pth`, DeepSpeed's shards) it raises `RuntimeError: [enforce fail
at inline_container.cc] ... PytorchStreamWriter failed writing file` or `unexpected pos`, with no errno, so
`checkpoints.is_disk_full` could not tell a full disk from a bug. Within `errno_preserving_saves()`,
`torch.save` to a path opens the file with Python and hands torch the file object: the failing write then
raises `OSError(ENOSPC)` ("No space left on device"). safetensors (the weights) and JSON writes report
ENOSPC themselves. The patch is undone when the block ends.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def errno_preserving_saves() -> Iterator[None]:
    """Within the block, `torch.save` to a path writes through a Python file (see the module docstring)."""
    import torch

    original = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as stream:
                return original(obj, stream, *args, **kwargs)
        return original(obj, f, *args, **kwargs)

    torch.save = save
    try:
        yield
    finally:
        torch.save = original
