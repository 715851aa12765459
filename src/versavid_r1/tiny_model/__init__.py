"""Offline tiny Qwen2.5-VL / Qwen2-VL / Qwen3-VL / Qwen3-VL-MoE / Qwen3.5 / Qwen2 text models for tests, the demo
run and the CPU judge.

    from versavid_r1.tiny_model import build_tiny_qwen25vl
    path = build_tiny_qwen25vl("outputs/tiny-qwen25vl", seed=0)   # a couple of seconds, no download
    processor = AutoProcessor.from_pretrained(path)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path)

What a build holds (everything `from_pretrained` needs, nothing fetched from a hub):
- a byte-level BPE tokenizer trained locally on an embedded corpus (`corpus.py`, about 490 lines),
  with Qwen2's pre-tokenisation and Qwen's added tokens in Qwen's order, saved as `Qwen2Tokenizer`
  (about 714 BPE tokens + 22 added = 736 ids; the model's vocab is padded to 768 rows, so like the
  real Qwen, `len(tokenizer) < config.vocab_size`);
- the ChatML chat template of Qwen2(.5)-VL with image and video parts (`chat_template.py`);
- `Qwen2_5_VLProcessor` (or `Qwen2VLProcessor`) with `Qwen2VLImageProcessor` and
  `Qwen2VLVideoProcessor`; video pixels per frame default to the paper's 128*28*28 .. 196*28*28;
- a randomly initialised `Qwen2_5_VLForConditionalGeneration` (text: hidden 64, 2 layers, 4 heads,
  2 KV heads, MLP 128; vision: depth 2, hidden 32, 2 heads, patch 14, merge 2, temporal patch 2):
  about 0.3 M parameters, about 1.3 MB of float32 safetensors, plus `generation_config.json`;
- `tiny_build.json`, the build record, written last: a dir that has it is complete.

The Qwen3 architectures (`build_tiny_qwen3vl`, `build_tiny_qwen3vl_moe`, `build_tiny_qwen35`; `arch.py`) use the
same tokenizer and sizes with their own configs (patch 16, DeepStack, interleaved M-RoPE; 4 experts; Gated
DeltaNet layers), `Qwen3VLProcessor` with `Qwen3VLVideoProcessor` and their chat templates.

THE WEIGHTS ARE RANDOM. Generations are gibberish (any token, including `<|video_pad|>` or ids past
the tokenizer's end, can come out). The model exists to exercise plumbing: chat templates, processor
kwargs, video tensors, generation, GRPO steps, checkpointing, judge HTTP round trips. Never read
quality into its outputs.

Determinism: the same seed and overrides give byte-identical weights and tokenizer files. Building
is atomic (a temp dir next to `out_dir`, renamed into place) and idempotent (an existing identical
build is returned as is), so concurrent ranks may all call the builder.

Size knobs: `TinySpec` (pass its fields as keyword overrides, e.g. `hidden_size=128`).
"""
from .build import (
    ARCHS,
    BUILDERS,
    TinyModelDirError,
    TinySpec,
    build_tiny,
    build_tiny_causal_lm,
    build_tiny_qwen2vl,
    build_tiny_qwen3vl,
    build_tiny_qwen3vl_moe,
    build_tiny_qwen25vl,
    build_tiny_qwen35,
    model_summary,
    read_marker,
)
from .chat_template import TEXT_CHAT_TEMPLATE, VL_CHAT_TEMPLATE
from .tokenizer import NON_SPECIAL_ADDED_TOKENS, SPECIAL_TOKENS, build_tokenizer

__all__ = [
    "ARCHS", "BUILDERS", "TinyModelDirError", "TinySpec", "build_tiny", "build_tiny_causal_lm",
    "build_tiny_qwen2vl", "build_tiny_qwen25vl", "build_tiny_qwen3vl", "build_tiny_qwen3vl_moe", "build_tiny_qwen35",
    "model_summary", "read_marker",
    "TEXT_CHAT_TEMPLATE", "VL_CHAT_TEMPLATE", "NON_SPECIAL_ADDED_TOKENS", "SPECIAL_TOKENS", "build_tokenizer",
]
