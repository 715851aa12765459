"""What a run folder records so that the run can be reproduced, analysed and shared.

Training writes `versavid_run.json` into its output_dir (`training_record`): every resolved setting (the
project's options, TRL's GRPOConfig, TRL's ModelConfig, the video and reward settings, the policy prompt
text), the command line, the git commit of this code and whether the work tree had uncommitted changes,
and the versions of the packages the results depend on. Evaluation puts the same `environment` into its
summary. Written by hand because no library records a source tree's git state next to a run.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Optional, Sequence

RUN_INFO_FILE = "versavid_run.json"
# The stack whose versions change results (distribution names); absent ones are recorded as null.
STACK_PACKAGES: tuple[str, ...] = (
    "versavid-r1", "qwen-vl-utils", "torch", "torchvision", "transformers", "tokenizers", "trl", "accelerate",
    "deepspeed", "peft", "datasets", "vllm", "flash-attn", "decord", "av", "numpy", "openai", "httpx", "fastapi",
    "uvicorn", "pydantic", "math-verify", "tensorboard", "wandb",
)
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the repository root of an editable install


def package_versions(names: Sequence[str] = STACK_PACKAGES) -> dict[str, Optional[str]]:
    out: dict[str, Optional[str]] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(root: Path = SOURCE_ROOT) -> dict[str, Any]:
    """{"commit", "dirty", "root"} of the code that runs; commit None when it is not a git checkout."""
    def git(*args: str) -> Optional[str]:
        try:
            proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "root": str(root)}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip()), "root": str(root)}


def environment() -> dict[str, Any]:
    """Code version and software stack of this process."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "git": git_state(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cuda": torch.version.cuda if cuda else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
    }


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def jsonable(value: Any) -> Any:
    """`value` as JSON data (dataclasses, also nested ones, as dicts; anything else unknown as its string)."""
    return json.loads(json.dumps(value, default=_default))


def training_record(script_args, training_args, model_args, **resolved: Any) -> dict[str, Any]:
    """The content of `versavid_run.json` (see the module docstring); `resolved` adds derived settings."""
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": list(sys.argv),
        **jsonable(resolved),
        "script_args": jsonable(script_args),
        "grpo_config": jsonable(training_args.to_dict()),  # TrainingArguments.to_dict hides tokens
        "model_config": jsonable(model_args),
        "environment": environment(),
    }
