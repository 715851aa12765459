"""The Qwen vision-language families this project trains as the policy, and every way they differ, in one place.

| family       | config `model_type` | how video time reaches the model                               | patch |
| ------------ | ------------------- | -------------------------------------------------------------- | ----- |
| Qwen2-VL     | `qwen2_vl`          | temporal position = index of the 2-frame grid                  | 14    |
| Qwen2.5-VL   | `qwen2_5_vl`        | temporal positions spaced by `second_per_grid_ts` (seconds)    | 14    |
| Qwen3-VL     | `qwen3_vl`          | a text timestamp `<t seconds>` before each frame group         | 16    |
| Qwen3-VL-MoE | `qwen3_vl_moe`      | as Qwen3-VL (mixture-of-experts language model)                | 16    |
| Qwen3.5      | `qwen3_5`           | as Qwen3-VL (Gated DeltaNet + attention language model)        | 16    |

Qwen3-VL and Qwen3.5 print the time of each 2-frame group as text (`<1.3 seconds>`, the mean of its two frames'
times, computed by the processor from `video_metadata`: frame index / fps) and give every group its own temporal
M-RoPE index (interleaved M-RoPE). So for them the metadata must carry the frames' real indices and frame rate
(`versavid_r1.trainer.video_inputs`), while Qwen2.5-VL needs only the sampling rate.

Everything family-specific the rest of the code needs comes from here: the transformers class to load, how video
time is encoded (`video_time`, also readable from a processor alone), the default LoRA targets. Behaviour that
follows from the model's structure (sliding-window or linear-attention layers, an MoE router loss) is read from
the loaded config where it is used, not listed here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

# How a family encodes the time of a video frame (`Family.video_time`).
GRID_INDEX = "grid_index"  # Qwen2-VL: the temporal position is the grid's index
SECONDS_PER_GRID = "seconds_per_grid"  # Qwen2.5-VL: positions spaced by `second_per_grid_ts`
TEXT_TIMESTAMPS = "text_timestamps"  # Qwen3-VL, Qwen3.5: "<t seconds>" text before each frame group

# LoRA targets (peft matches the last name component). Language model attention and MLP projections, vision
# tower attention and MLP. `proj` also matches the vision patch embedding (peft adapts it as a Conv3d).
_QWEN2_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv", "proj")
_QWEN3_VISION = ("qkv", "proj", "linear_fc1", "linear_fc2")
_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Family:
    """One model family (see the module table)."""

    model_type: str
    label: str
    model_class: str  # the transformers class that generates and trains
    video_time: str  # GRID_INDEX, SECONDS_PER_GRID or TEXT_TIMESTAMPS
    lora_targets: tuple[str, ...]


FAMILIES: dict[str, Family] = {f.model_type: f for f in (
    Family("qwen2_vl", "Qwen2-VL", "Qwen2VLForConditionalGeneration", GRID_INDEX, _QWEN2_TARGETS),
    Family("qwen2_5_vl", "Qwen2.5-VL", "Qwen2_5_VLForConditionalGeneration", SECONDS_PER_GRID, _QWEN2_TARGETS),
    Family("qwen3_vl", "Qwen3-VL", "Qwen3VLForConditionalGeneration", TEXT_TIMESTAMPS,
           _ATTENTION + _MLP + _QWEN3_VISION),
    # The experts are fused 3-D parameters, not Linear modules: LoRA targets attention and the vision tower
    # (peft's `lora_target_parameters` can reach the experts).
    Family("qwen3_vl_moe", "Qwen3-VL-MoE", "Qwen3VLMoeForConditionalGeneration", TEXT_TIMESTAMPS,
           _ATTENTION + _QWEN3_VISION),
    # Gated DeltaNet layers: in_proj_qkv / in_proj_z / out_proj; the other layers are ordinary attention.
    Family("qwen3_5", "Qwen3.5", "Qwen3_5ForConditionalGeneration", TEXT_TIMESTAMPS,
           _ATTENTION + _MLP + ("in_proj_qkv", "in_proj_z", "out_proj") + _QWEN3_VISION),
)}

# Processor class -> how it encodes video time (Qwen3VLProcessor serves Qwen3-VL, Qwen3-VL-MoE and Qwen3.5).
_PROCESSOR_TIME = {
    "Qwen2VLProcessor": GRID_INDEX,
    "Qwen2_5_VLProcessor": SECONDS_PER_GRID,
    "Qwen3VLProcessor": TEXT_TIMESTAMPS,
}


def family(config_or_type: Union[str, Any]) -> Family:
    """The family of a config (or its `model_type`); a clear error for anything this project does not train."""
    model_type = config_or_type if isinstance(config_or_type, str) else getattr(config_or_type, "model_type", None)
    if model_type not in FAMILIES:
        raise ValueError(f"unsupported model_type {model_type!r}: this project trains {sorted(FAMILIES)} "
                         "(docs/training.md, 'Model families')")
    return FAMILIES[model_type]


def model_class(config_or_type: Union[str, Any]) -> type:
    """The transformers generation class of a config's family."""
    import transformers

    return getattr(transformers, family(config_or_type).model_class)


def video_time(processor) -> str:
    """How the model behind `processor` encodes video time (by the processor class or a base class of it)."""
    for cls in type(processor).__mro__:
        if cls.__name__ in _PROCESSOR_TIME:
            return _PROCESSOR_TIME[cls.__name__]
    raise TypeError(f"{type(processor).__name__} is not a Qwen2-VL / Qwen2.5-VL / Qwen3-VL processor; video time "
                    "encoding unknown")


def uses_text_timestamps(processor) -> bool:
    """True for Qwen3-VL / Qwen3.5 processors (a `<t seconds>` text timestamp before each frame group)."""
    return video_time(processor) == TEXT_TIMESTAMPS
