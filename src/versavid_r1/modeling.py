"""Choosing the attention kernel and loading the policy models (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Qwen3-VL-MoE,
Qwen3.5) from local paths.

- `attn_implementation(requested)`: "flash_attention_2" only when flash_attn imports and CUDA is
  available, otherwise "sdpa". An explicit request for flash_attention_2 that cannot be honoured
  falls back to sdpa with a warning (never a crash deep inside from_pretrained).
- `load_vl_model(path, ...)`: picks the generation class from the config's model_type
  (`versavid_r1.families`). Nothing is downloaded behind the
  user's back: a local dir is loaded with local_files_only=True, a missing local path fails with a
  clear FileNotFoundError, and a hub id under HF_HUB_OFFLINE=1 is only looked up in the local cache.
"""
from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path
from typing import Any, Optional, Union

import torch

log = logging.getLogger(__name__)

FLASH_ATTENTION_2 = "flash_attention_2"
SDPA = "sdpa"
_AUTO = (None, "", "auto")
_logged: set[tuple[str | None, str]] = set()


@functools.lru_cache(maxsize=1)
def flash_attn_available() -> bool:
    """True when `import flash_attn` works (it can fail on ABI mismatch, not just absence) and CUDA is up."""
    if not torch.cuda.is_available():
        return False
    try:
        import flash_attn  # noqa: F401
    except Exception:  # ImportError, or an undefined-symbol OSError from a wheel built for another torch
        return False
    return True


def attn_implementation(requested: str | None = None) -> str:
    """The attention implementation to pass to `from_pretrained` (see the module docstring).

    `requested` None/""/"auto" chooses; "flash_attention_2" is honoured only when available;
    anything else ("sdpa", "eager", "flex_attention", ...) is passed through unchanged.
    """
    if requested in _AUTO:
        choice = FLASH_ATTENTION_2 if flash_attn_available() else SDPA
        _log_once(requested, choice, logging.INFO,
                  "attention implementation: %s (flash_attn importable with CUDA: %s)",
                  choice, choice == FLASH_ATTENTION_2)
        return choice
    if requested == FLASH_ATTENTION_2 and not flash_attn_available():
        reason = "CUDA is not available" if not torch.cuda.is_available() else "flash_attn cannot be imported"
        _log_once(requested, SDPA, logging.WARNING,
                  "flash_attention_2 was requested but %s; falling back to sdpa "
                  "(install the `gpu` extra on a CUDA machine to use it)", reason)
        return SDPA
    return requested


def _log_once(requested: str | None, choice: str, level: int, msg: str, *args: Any) -> None:
    key = (requested or None, choice)
    if key not in _logged:
        _logged.add(key)
        log.log(level, msg, *args)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


_HUB_ID = re.compile(r"^[A-Za-z0-9_][\w.-]*(/[\w.-]+)?$")


def _looks_like_local_path(name: str) -> bool:
    """Anything that cannot be a hub id ("name" or "org/name") is a local path."""
    return not _HUB_ID.match(name) or name.endswith((".", "-")) or ".." in name


MODEL_FILES = ("config.json",)
# A processor can be loaded from a folder without config.json: a LoRA adapter folder saved by the trainer
# holds the processor next to adapter_config.json.
PROCESSOR_FILES = ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json")


def resolve_pretrained(path: Union[str, os.PathLike], markers: tuple[str, ...] = MODEL_FILES) -> tuple[str, dict[str, Any]]:
    """(name to pass to from_pretrained, extra kwargs) with the no-surprise-download rules above. A local
    directory must hold one of `markers`."""
    name = os.fspath(path)
    p = Path(name).expanduser()
    if p.is_dir():
        if not any((p / m).is_file() for m in markers):
            raise FileNotFoundError(f"{p} is a directory but has no {' or '.join(markers)}; not a model directory "
                                    "(build a tiny one with scripts/make_tiny_qwen25vl.py --out DIR)")
        return str(p), {"local_files_only": True}
    if p.exists() or _looks_like_local_path(name):
        raise FileNotFoundError(f"model path {name!r} does not exist or is not a directory")
    if _hub_offline():
        return name, {"local_files_only": True}
    return name, {}


def _offline_error(name: str, err: Exception) -> OSError:
    return OSError(
        f"{name!r} is not a local directory and HF_HUB_OFFLINE is set, and it is not in the local "
        f"Hugging Face cache either; pass a local model directory (e.g. one made with "
        f"scripts/make_tiny_qwen25vl.py --out DIR). Cause: {err}")


def _torch_dtype(dtype: Any) -> Any:
    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    names = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    name = names.get(str(dtype), str(dtype)).removeprefix("torch.")
    if not isinstance(getattr(torch, name, None), torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}")
    return getattr(torch, name)


def vl_model_class(model_type: str):
    """The generation class for a Qwen VL config's model_type (`versavid_r1.families`)."""
    from versavid_r1.families import model_class

    return model_class(model_type)


def load_vl_model(path: Union[str, os.PathLike], dtype: Any = "auto", attn_implementation: str | None = None,
                  **kwargs: Any):
    """Load a policy model for generation/training (class chosen from config.json's model_type).

    `dtype`: "auto" (the checkpoint's), a torch.dtype or a name ("bfloat16", "bf16", ...).
    `attn_implementation`: passed through `attn_implementation()` (so None picks, and an unusable
    flash_attention_2 falls back to sdpa). Other kwargs go to `from_pretrained` (device_map, ...).
    """
    from transformers import AutoConfig

    name, extra = resolve_pretrained(path)
    extra.update(kwargs)
    try:
        config = AutoConfig.from_pretrained(name, **{k: v for k, v in extra.items()
                                                     if k in ("local_files_only", "revision", "trust_remote_code")})
    except OSError as err:
        if _hub_offline() and not Path(name).expanduser().is_dir():
            raise _offline_error(name, err) from err
        raise
    cls = vl_model_class(config.model_type)
    impl = globals()["attn_implementation"](attn_implementation)
    model = cls.from_pretrained(name, dtype=_torch_dtype(dtype), attn_implementation=impl, **extra)
    log.info("loaded %s from %s (dtype %s, attention %s)", cls.__name__, name, model.dtype, impl)
    return model


def vision_patch_size(path: Union[str, os.PathLike, None]) -> Optional[int]:
    """The vision patch size of the model at `path` (its config.json, or a LoRA adapter's base model's): 14 for
    Qwen2/2.5-VL, 16 for Qwen3-VL / Qwen3.5. None when it cannot be read here (no path, not local, not cached):
    the caller keeps its default and the model load reports the problem."""
    if not path:
        return None
    adapter = Path(os.fspath(path)).expanduser() / "adapter_config.json"
    try:
        if adapter.is_file() and not adapter.with_name("config.json").is_file():
            import json

            return vision_patch_size(json.loads(adapter.read_text()).get("base_model_name_or_path"))
        from transformers import AutoConfig

        name, extra = resolve_pretrained(path)
        config = AutoConfig.from_pretrained(name, local_files_only=True, **{k: v for k, v in extra.items()
                                                                              if k != "local_files_only"})
    except (OSError, ValueError, KeyError):
        return None
    patch = getattr(getattr(config, "vision_config", None), "patch_size", None)
    return int(patch) if isinstance(patch, int) else None


def load_processor(path: Union[str, os.PathLike], **kwargs: Any):
    """`AutoProcessor.from_pretrained` with the same local-path / offline rules as `load_vl_model`."""
    from transformers import AutoProcessor

    name, extra = resolve_pretrained(path, PROCESSOR_FILES)
    extra.update(kwargs)
    try:
        return AutoProcessor.from_pretrained(name, **extra)
    except OSError as err:
        if _hub_offline() and not Path(name).expanduser().is_dir():
            raise _offline_error(name, err) from err
        raise


def lora_targets_for(config) -> list[str]:
    """The LoRA target modules used when `--use_peft true` names none (peft has no default for these models and
    would stop): the family's language and vision projections (`versavid_r1.families.Family.lora_targets`)."""
    from versavid_r1.families import family

    return list(family(config).lora_targets)


VISION_SPECIAL_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")


def vision_special_token_ids(tokenizer) -> list[int]:
    """Ids of the vision placeholder tokens, e.g. to forbid them in generation (a random or early
    policy can sample `<|video_pad|>`, which then breaks the next forward pass with the video)."""
    ids = []
    for tok in VISION_SPECIAL_TOKENS:
        i = tokenizer.convert_tokens_to_ids(tok)
        if i is not None and i != getattr(tokenizer, "unk_token_id", None):
            ids.append(int(i))
    return ids


def freeze_vision_tower(model) -> int:
    """Keep the vision encoder (patch embedding, blocks, merger: the parameters under `visual`) as it is: no
    gradient, no update. Returns how many parameter values were frozen; ValueError for a model without one.

    Why an option: with a randomly initialised tiny vision tower and a high learning rate, training drifts the
    tower towards one large constant output for every video (the language model then uses the video tokens
    as a fixed context and the pixels no longer matter); kept frozen, its random features keep the colours
    and the language model learns to read them. Real checkpoints are often trained with it frozen too."""
    frozen = 0
    for name, param in model.named_parameters():
        if ".visual." in f".{name}":
            param.requires_grad_(False)
            frozen += param.numel()
    if not frozen:
        raise ValueError(f"{type(model).__name__} has no vision tower (no parameter under `visual`)")
    return frozen
