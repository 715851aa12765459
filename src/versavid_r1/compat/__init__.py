"""Workarounds for bugs of the pinned libraries, installed once by `import versavid_r1`.

Each lives in its own module, names the upstream bug and fix, and switches itself off when the installed
library already behaves right (checked by behaviour, not by version); see docs/stack.md. Nothing heavy is
imported here: a patch runs when its target module is first imported (`hook.after_import`).

- `mrope`: Qwen2.5-VL video temporal positions (transformers 5.17 truncates the seconds per grid).
- `zero3_transpose`: Qwen3-VL-MoE expert weights loaded under DeepSpeed ZeRO-3 (transformers 5.17 transposes them
  whatever their layout).
"""
from versavid_r1.compat.hook import after_import

QWEN25_VL_MODELING = "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl"
WEIGHT_CONVERSIONS = "transformers.core_model_loading"


def _patch_qwen25_vl(module) -> None:
    from versavid_r1.compat.mrope import patch_module

    patch_module(module)


def _patch_weight_conversions(module) -> None:
    from versavid_r1.compat.zero3_transpose import patch_module

    patch_module(module)


def install() -> None:
    """Register every workaround (idempotent)."""
    after_import(QWEN25_VL_MODELING, _patch_qwen25_vl)
    after_import(WEIGHT_CONVERSIONS, _patch_weight_conversions)
