"""Building the tiny model directories: configs, random weights, processor, atomic publish."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Union

import torch

from . import arch as archs
from .tokenizer import DEFAULT_BPE_VOCAB_SIZE, build_tokenizer, token_ids

log = logging.getLogger(__name__)

MARKER = "tiny_build.json"  # written last (inside the temp dir): its presence means "complete"
FORMAT_VERSION = 1
ARCHS = archs.ARCHS
_REQUIRED_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                   "tokenizer_config.json")

PathLike = Union[str, os.PathLike]


class TinyModelDirError(RuntimeError):
    """out_dir holds something other than the requested tiny build."""


@dataclasses.dataclass(frozen=True)
class TinySpec:
    """Every size knob of the tiny models (the `**overrides` of the builders).

    Defaults give about 0.3 M parameters (docs/stack.md). Pixel limits follow the paper for video
    (128*28*28 .. 196*28*28 per frame); image limits are Qwen2-VL's processor defaults.
    """

    bpe_vocab_size: int = DEFAULT_BPE_VOCAB_SIZE  # upper bound for the trained BPE (bytes + merges)
    vocab_size: int | None = None  # embedding rows; None: len(tokenizer) rounded up to a multiple of 64
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 32768
    rope_theta: float = 1_000_000.0
    tie_word_embeddings: bool = False
    vision_depth: int = 2
    vision_hidden_size: int = 32
    vision_intermediate_size: int = 64  # Qwen2-VL: mlp_ratio = this / vision_hidden_size
    vision_num_heads: int = 2
    vision_window_size: int = 112  # Qwen2.5-VL window attention, in pixels
    tokens_per_second: int = 2  # Qwen2.5-VL temporal position ids per second of video
    video_min_pixels: int = 128 * 28 * 28
    video_max_pixels: int = 196 * 28 * 28
    image_min_pixels: int = 56 * 56
    image_max_pixels: int = 28 * 28 * 1280
    dtype: str = "float32"  # weights on disk

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any]) -> "TinySpec":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown tiny-model override(s) {unknown}; valid: {sorted(names)}")
        spec = cls(**overrides)
        if spec.hidden_size % spec.num_attention_heads or (spec.hidden_size // spec.num_attention_heads) % 8:
            raise ValueError("hidden_size / num_attention_heads must be a multiple of 8 (mrope sections)")
        if spec.num_attention_heads % spec.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if spec.vision_hidden_size % spec.vision_num_heads:
            raise ValueError("vision_hidden_size must be a multiple of vision_num_heads")
        if spec.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, got {spec.dtype!r}")
        return spec


def _generation_config(ids: dict[str, int]):
    from transformers import GenerationConfig

    # Stop on <|im_end|> or <|endoftext|> like Qwen's instruct models; greedy unless the caller
    # asks for sampling (trainers pass their own sampling settings).
    return GenerationConfig(bos_token_id=ids["bos_token_id"], pad_token_id=ids["pad_token_id"],
                            eos_token_id=[ids["eos_token_id"], ids["endoftext_id"]], do_sample=False)


def _build_into(tmp: Path, arch: str, seed: int, spec: TinySpec) -> None:
    from transformers import Qwen2Config

    tokenizer = build_tokenizer(spec.bpe_vocab_size)
    ids = token_ids(tokenizer)
    vocab_size = spec.vocab_size or -(-len(tokenizer) // 64) * 64
    if vocab_size < len(tokenizer):
        raise ValueError(f"vocab_size {vocab_size} is smaller than the tokenizer ({len(tokenizer)} tokens)")

    if arch == "causal_lm":
        text = archs.text_kwargs(spec, ids, vocab_size)
        config = Qwen2Config(**text, rope_parameters={"rope_type": "default", "rope_theta": spec.rope_theta},
                             tie_word_embeddings=spec.tie_word_embeddings)
    else:
        config = archs.vl_config(arch, spec, ids, vocab_size)
    model_cls = archs.model_class(arch)
    tokenizer.chat_template = archs.chat_template(arch)

    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
        torch.manual_seed(seed)
        model = model_cls(config)
    model = model.to(getattr(torch, spec.dtype)).eval()
    model.generation_config = _generation_config(ids)
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a 1 MB file needs no "Writing model shards" bar
    try:
        model.save_pretrained(tmp, safe_serialization=True)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    if arch == "causal_lm":
        tokenizer.save_pretrained(tmp)
    else:
        archs.processor(arch, tokenizer, spec).save_pretrained(tmp)
    n_params = sum(p.numel() for p in model.parameters())
    marker = _marker(arch, seed, spec)
    marker["num_parameters"] = n_params
    (tmp / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    for f in tmp.iterdir():  # safetensors' writer leaves 0600; make the files as readable as the dir
        os.chmod(f, 0o644)


def _marker(arch: str, seed: int, spec: TinySpec) -> dict[str, Any]:
    return {"builder": "versavid_r1.tiny_model", "format": FORMAT_VERSION, "arch": arch, "seed": seed,
            "spec": dataclasses.asdict(spec)}


def read_marker(path: PathLike) -> dict[str, Any] | None:
    """The build record of a tiny model dir, or None when `path` holds no complete tiny build."""
    try:
        return json.loads((Path(path) / MARKER).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def _same_build(found: dict[str, Any] | None, want: dict[str, Any]) -> bool:
    return found is not None and all(found.get(k) == v for k, v in want.items())


def _publish(tmp: Path, out: Path, want: dict[str, Any]) -> None:
    """Atomically move the finished temp dir to `out` (an empty or missing dir)."""
    try:
        os.rename(tmp, out)  # replaces an empty directory on POSIX; fails if `out` is not empty
    except OSError:
        if _same_build(read_marker(out), want):  # a concurrent builder (another rank) won the race
            shutil.rmtree(tmp, ignore_errors=True)
            return
        raise


def build_tiny(out_dir: PathLike, arch: str = "qwen2_5_vl", seed: int = 0, overwrite: bool = False,
               **overrides: Any) -> Path:
    """Build (or reuse) a tiny `arch` model dir at `out_dir`; see the package docstring.

    Idempotent: a dir that already holds the same build (arch, seed, overrides, format) is returned
    untouched. A dir holding a different tiny build raises unless `overwrite=True`; a non-empty dir
    that is not a tiny build always raises (it is never deleted).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown tiny arch {arch!r}; choose one of {ARCHS}")
    spec = TinySpec.from_overrides(overrides)
    out = Path(out_dir).expanduser().absolute()
    want = _marker(arch, seed, spec)
    found = read_marker(out)
    if _same_build(found, want):
        missing = [f for f in _REQUIRED_FILES if not (out / f).is_file()]
        if not missing:
            return out
        if not overwrite:
            raise TinyModelDirError(f"{out} is a tiny build missing {missing}; rebuild with overwrite=True")
    if found is None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TinyModelDirError(f"{out} exists and is not a tiny model build; refusing to write into it")
    if found is not None and not overwrite and not _same_build(found, want):
        raise TinyModelDirError(
            f"{out} holds a different tiny build (arch={found.get('arch')}, seed={found.get('seed')}, "
            f"format={found.get('format')}); pass overwrite=True (CLI: --overwrite) or choose another directory")

    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the published dir should look like any other
        _build_into(tmp, arch, seed, spec)
        if found is not None:  # overwrite: move the old build aside first, then publish, then delete
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, trash / "old")
            _publish(tmp, out, want)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            _publish(tmp, out, want)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built tiny %s model (seed %d) at %s in %.1f s", arch, seed, out, time.perf_counter() - t0)
    return out


def build_tiny_qwen25vl(out_dir: PathLike, seed: int = 0, **overrides: Any) -> Path:
    """Tiny random Qwen2.5-VL dir: tokenizer, Qwen2_5_VLProcessor, Qwen2_5_VLForConditionalGeneration."""
    return build_tiny(out_dir, "qwen2_5_vl", seed, **overrides)


def build_tiny_qwen2vl(out_dir: PathLike, seed: int = 0, **overrides: Any) -> Path:
    """Tiny random Qwen2-VL dir: tokenizer, Qwen2VLProcessor, Qwen2VLForConditionalGeneration."""
    return build_tiny(out_dir, "qwen2_vl", seed, **overrides)


def build_tiny_causal_lm(out_dir: PathLike, seed: int = 0, **overrides: Any) -> Path:
    """Tiny random text-only Qwen2ForCausalLM with the same tokenizer and a ChatML text template."""
    return build_tiny(out_dir, "causal_lm", seed, **overrides)


def build_tiny_qwen3vl(out_dir: PathLike, seed: int = 0, **overrides: Any) -> Path:
    """Tiny random Qwen3-VL dir: tokenizer, Qwen3VLProcessor, Qwen3VLForConditionalGeneration."""
    return build_tiny(out_dir, "qwen3_vl", seed, **overrides)


def build_tiny_qwen3vl_moe(out_dir: PathLike, seed: int = 0, **overrides: Any) -> Path:
    """Tiny random Qwen3-VL-MoE dir: tokenizer, Qwen3VLProcessor, Qwen3VLMoeForConditionalGeneration."""
    return build_tiny(out_dir, "qwen3_vl_moe", seed, **overrides)


def build_tiny_qwen35(out_dir: PathLike, seed: int = 0, **overrides: Any) -> Path:
    """Tiny random Qwen3.5 dir: tokenizer, Qwen3VLProcessor, Qwen3_5ForConditionalGeneration."""
    return build_tiny(out_dir, "qwen3_5", seed, **overrides)


BUILDERS: dict[str, Callable[..., Path]] = {
    "qwen2_5_vl": build_tiny_qwen25vl, "qwen2_vl": build_tiny_qwen2vl, "qwen3_vl": build_tiny_qwen3vl,
    "qwen3_vl_moe": build_tiny_qwen3vl_moe, "qwen3_5": build_tiny_qwen35, "causal_lm": build_tiny_causal_lm,
}


def model_summary(path: PathLike) -> dict[str, Any]:
    """Parameter count (from the safetensors header, no weights loaded) and disk size of a model dir."""
    path = Path(path)
    header_len = int.from_bytes((path / "model.safetensors").open("rb").read(8), "little")
    with (path / "model.safetensors").open("rb") as f:
        f.seek(8)
        header = json.loads(f.read(header_len))
    n = 0
    for name, meta in header.items():
        if name != "__metadata__":
            count = 1
            for d in meta["shape"]:
                count *= d
            n += count
    files = [p for p in path.rglob("*") if p.is_file()]
    return {
        "path": str(path),
        "num_parameters": n,
        "weights_bytes": (path / "model.safetensors").stat().st_size,
        "dir_bytes": sum(p.stat().st_size for p in files),
        "files": sorted(str(p.relative_to(path)) for p in files),
    }
