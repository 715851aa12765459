"""Workaround: under DeepSpeed ZeRO-3, transformers 5.17 loads Qwen3-VL-MoE expert weights transposed.

The upstream bug: transformers converts mixture-of-experts weights while loading them (`conversion_mapping.py`,
`qwen3_vl_moe`: `Transpose(1, 2, check_dims=True)` on `mlp.experts.gate_up_proj` and `mlp.experts.down_proj`,
because the released checkpoints store them the other way round). With `check_dims` the tensor is transposed
unless its shape already equals the model parameter's (`core_model_loading.Transpose.convert`). Under ZeRO-3 the
model is built partitioned: a parameter's `shape` is empty and its real shape is `ds_shape`, so the check never
matches and every expert tensor is transposed. A released checkpoint happens to load right; one in transformers'
own layout, which is what `save_pretrained` writes (a model this project trained, the tiny test models), fails
with "size mismatch" (or, were the tensor square, loads transposed without a word).

The workaround compares with `ds_shape` when the parameter has one; it is installed when `transformers.
core_model_loading` is imported, and only if the installed `Transpose.convert` gets a partitioned parameter
wrong (checked by calling it, not by version). Tested by tests/test_families_training.py (a ZeRO-3 step on the
tiny Qwen3-VL-MoE, whose checkpoint is in transformers' layout).
"""
from __future__ import annotations

import functools
import logging

import torch

log = logging.getLogger(__name__)

_ORIGINAL = "_versavid_original_convert"


class _Partitioned(torch.nn.Module):
    """A module whose parameter looks like a ZeRO-3 partitioned one: empty, with the real shape in `ds_shape`."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(0))
        self.weight.ds_shape = torch.Size(shape)


def handles_partitioned(convert) -> bool:
    """True when `convert` (unbound `Transpose.convert`) keeps a tensor whose shape is a partitioned parameter's
    real shape, as it does for an ordinary parameter."""
    from transformers.core_model_loading import Transpose

    op = Transpose(1, 2, check_dims=True)
    tensor = torch.zeros(2, 3, 5)
    out = convert(op, {"weight": [tensor]}, ["weight"], ["weight"], model=_Partitioned((2, 3, 5)),
                  full_layer_name="weight")
    return tuple(next(iter(out.values())).shape) == (2, 3, 5)


def _expected_shape_of_partitioned(original):
    @functools.wraps(original)
    def convert(self, input_dict, source_patterns, target_patterns, **kwargs):
        model, name = kwargs.get("model"), kwargs.get("full_layer_name")
        if self.check_dims and model is not None and name is not None:
            param = model.get_parameter(name)
            real = getattr(param, "ds_shape", None)
            if real is not None:
                tensors = next(iter(input_dict.values()))
                tensor = tensors[0] if isinstance(tensors, list) else tensors
                target = self.get_target_pattern(input_dict, source_patterns, target_patterns)
                if tuple(tensor.shape) == tuple(real):
                    return {target: tensor}
                return {target: torch.transpose(tensor, dim0=self.dim0, dim1=self.dim1).contiguous()}
        return original(self, input_dict, source_patterns, target_patterns, **kwargs)

    return convert


def patch_module(module) -> bool:
    """Patch `module.Transpose.convert` unless it already handles partitioned parameters. True when patched."""
    cls = getattr(module, "Transpose", None)
    current = getattr(cls, "convert", None)
    if current is None or hasattr(cls, _ORIGINAL):
        return False
    if handles_partitioned(current):
        log.info("transformers' Transpose conversion already handles ZeRO-3 partitioned parameters; not patched")
        return False
    setattr(cls, _ORIGINAL, current)
    cls.convert = _expected_shape_of_partitioned(current)
    log.info("patched transformers' Transpose conversion: checks ZeRO-3 partitioned parameters by ds_shape")
    return True
