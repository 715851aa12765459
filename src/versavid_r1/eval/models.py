"""Loading the checkpoint under evaluation: a full model directory or a LoRA adapter (peft).

A directory with `adapter_config.json` is a peft adapter: its base model (`base_model_name_or_path`, or
`--base_model`) is loaded with `versavid_r1.modeling.load_vl_model`, the adapter applied and merged
(`merge_and_unload`), so generation runs at the speed of a plain model. The processor comes from
`--processor_path`, else the checkpoint directory when it holds one (training checkpoints do), else the
adapter's base model.

vLLM loads weights from a directory itself, so for an adapter `merged_model_dir` writes the merged model
(and its processor) once into the output folder and vLLM loads that.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

import torch

from versavid_r1.modeling import load_processor, load_vl_model
from versavid_r1.run_record import RUN_INFO_FILE

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json")


def is_adapter_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(path: str | os.PathLike, base_model: Optional[str] = None) -> str:
    """The base model of an adapter directory: `base_model` if given, else the adapter's own record.

    peft records the base model path as training was given it. A relative path only works from the
    training's working directory, so when it is not a directory here, the absolute model path of the
    training run's `versavid_run.json` (in the adapter folder, or its parent for a checkpoint) is used if
    it ends with the recorded path. (This project's trainer records absolute paths; older adapters may not.)
    """
    if base_model:
        return base_model
    with open(Path(path) / ADAPTER_CONFIG, encoding="utf-8") as f:
        base = json.load(f).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{path}/{ADAPTER_CONFIG} names no base_model_name_or_path; pass --base_model")
    base = str(base)
    if os.path.isdir(base) or os.path.isabs(base):
        return base
    for folder in (Path(path), Path(path).parent):
        run_file = folder / RUN_INFO_FILE
        if not run_file.is_file():
            continue
        recorded = json.loads(run_file.read_text(encoding="utf-8")).get("model")
        if (isinstance(recorded, str) and os.path.isabs(recorded) and os.path.isdir(recorded)
                and Path(recorded).as_posix().endswith(Path(base).as_posix())):
            log.info("adapter base %r resolved to %s (from %s)", base, recorded, run_file)
            return recorded
    return base


def has_processor(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "tokenizer_config.json").is_file() and any((p / f).is_file() for f in PROCESSOR_FILES)


def processor_source(cfg) -> str:
    """Where the processor is loaded from (see the module docstring)."""
    if cfg.processor_path:
        return cfg.processor_path
    if has_processor(cfg.model) or not is_adapter_dir(cfg.model):
        return cfg.model
    return adapter_base(cfg.model, cfg.base_model)


def resolve_device(device: str) -> torch.device:
    if device in ("", "auto", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_eval_model(cfg) -> tuple[Any, Any]:
    """(model in eval mode on `cfg.device`, processor) for the hf backend."""
    if is_adapter_dir(cfg.model):
        model = _load_merged_adapter(cfg)
    else:
        model = load_vl_model(cfg.model, dtype=cfg.dtype, attn_implementation=cfg.attn_implementation)
    model.to(resolve_device(cfg.device))
    model.eval()
    return model, load_processor(processor_source(cfg))


def _load_merged_adapter(cfg):
    try:
        from peft import PeftModel
    except ImportError as exc:  # peft is a core dependency; a broken install should say so
        raise ImportError(f"{cfg.model} is a LoRA adapter, which needs the `peft` package") from exc
    base = adapter_base(cfg.model, cfg.base_model)
    log.info("LoRA adapter %s on base model %s: merging the adapter into the base weights", cfg.model, base)
    model = load_vl_model(base, dtype=cfg.dtype, attn_implementation=cfg.attn_implementation)
    return PeftModel.from_pretrained(model, cfg.model).merge_and_unload()


def merged_model_dir(cfg, out_dir: str | os.PathLike) -> str:
    """A directory vLLM can load: the checkpoint itself, or (adapter) its merged copy in `out_dir`."""
    if not is_adapter_dir(cfg.model):
        return cfg.model
    target = Path(out_dir) / "merged-model"
    if (target / "config.json").is_file():
        return str(target)
    model = _load_merged_adapter(cfg)
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    load_processor(processor_source(cfg)).save_pretrained(tmp)
    os.replace(tmp, target)
    return str(target)
