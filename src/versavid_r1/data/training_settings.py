"""What a training config file resolves to for sampling: its prompt, video, sampler and reward-gate settings.

Difficulty filtering must sample the way training will (the paper: the base model's answers to the training
prompts), so `scripts/filter_difficulty.py --training_config FILE` reads these settings from the training
YAML itself instead of relying on matching flags. The YAML is read as the training parser reads it (keys =
option names); a key it does not set takes the training default: `VideoArguments` for the video and prompt
options, TRL's `GRPOConfig` for the sampler, the training reward's for the gate. GRPOConfig is not built (its
checks refuse bf16 on a CPU machine); only its field defaults are read.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from versavid_r1.data.args import VideoArguments

# The filter's option <- the training option it must equal.
SAMPLER_KEYS = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p",
                "repetition_penalty": "repetition_penalty", "max_new_tokens": "max_completion_length"}
# Reward settings of the training flags (versavid_r1.trainer.args.ScriptArguments) and their defaults.
REWARD_DEFAULTS = {"format_mode": "strict", "decoy_check": True}


def _defaults(cls) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def training_settings(path: str) -> dict[str, Any]:
    """{filter option: value} for the video and prompt options, the sampler and the format gate that the
    training config at `path` resolves to (module docstring). Raises ValueError for an unreadable file."""
    from trl import GRPOConfig

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"training_config {path}: cannot read it ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"training_config {path}: not a mapping of training options")
    video = _defaults(VideoArguments)
    grpo = _defaults(GRPOConfig)
    out = {name: data.get(name, default) for name, default in video.items()}
    out.update({mine: data.get(theirs, grpo[theirs]) for mine, theirs in SAMPLER_KEYS.items()})
    out.update({name: data.get(name, default) for name, default in REWARD_DEFAULTS.items()})
    return out
