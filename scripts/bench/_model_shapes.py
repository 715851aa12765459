"""Model shapes and FLOP counts shared by the GPU and loss-pass benchmarks: Qwen2.5-VL configs with the
published 3B/7B hyperparameters (nothing downloaded), parameter counts by part, forward FLOPs of the plain and
the shared-prefix log-prob pass, and the datasheet bf16 peaks MFU is reported against.

Imports only torch and transformers (the GPU machine may have nothing else).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

# Published hyperparameters (config.json of Qwen/Qwen2.5-VL-3B-Instruct and -7B-Instruct).
QWEN_IDS = dict(bos_token_id=151643, eos_token_id=151645, pad_token_id=151643, vision_start_token_id=151652,
                vision_end_token_id=151653, image_token_id=151655, video_token_id=151656)
QWEN_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, in_channels=3, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
                   tokens_per_second=2, hidden_act="silu")
SIZES: dict[str, dict] = {
    "3b": dict(text=dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                         num_key_value_heads=2, vocab_size=151936, max_position_embeddings=128000),
               vision=QWEN_VISION, ids=QWEN_IDS, tie_word_embeddings=True),
    "7b": dict(text=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=152064, max_position_embeddings=128000),
               vision=QWEN_VISION, ids=QWEN_IDS, tie_word_embeddings=False),
    # The same code path on a CPU in seconds (tests, --dry-run checks): not a benchmark.
    "cpu-tiny": dict(text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                               num_key_value_heads=2, vocab_size=1024, max_position_embeddings=32768),
                     vision=dict(QWEN_VISION, depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                                 fullatt_block_indexes=[1]),
                     ids=dict(bos_token_id=1000, eos_token_id=1001, pad_token_id=1000, vision_start_token_id=1002,
                              vision_end_token_id=1003, image_token_id=1004, video_token_id=1005),
                     tie_word_embeddings=False),
}


def make_config(size: str):
    """A Qwen2_5_VLConfig with the published hyperparameters of `size`."""
    from transformers import Qwen2_5_VLConfig

    spec = SIZES[size]
    text = dict(spec["text"], hidden_act="silu", rms_norm_eps=1e-6, use_sliding_window=False,
                max_window_layers=spec["text"]["num_hidden_layers"], attention_dropout=0.0,
                rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
                **{k: spec["ids"][k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")})
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    if head_dim // 2 != 64:  # mrope_section sums to head_dim / 2 (64 for Qwen's 128-dim heads)
        half = head_dim // 2
        t = half // 4
        text["rope_parameters"]["mrope_section"] = [t, (half - t) // 2, half - t - (half - t) // 2]
    vision = dict(spec["vision"], out_hidden_size=text["hidden_size"])
    ids = {k: spec["ids"][k] for k in ("vision_start_token_id", "vision_end_token_id", "image_token_id", "video_token_id")}
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=spec["tie_word_embeddings"], **ids)


@dataclass
class Counts:
    """Parameters by part, from the model's modules (works on the meta device)."""

    total: int
    text_linear: int  # decoder-layer Linear weights (q, k, v, o, gate, up, down)
    vision_linear: int  # vision tower + merger Linear weights
    lm_head: int
    embedding: int


def count_params(model) -> Counts:
    import torch.nn as nn

    text = vision = head = 0
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            n = mod.weight.numel()
            if name.endswith("lm_head"):
                head += n
            elif ".visual." in f".{name}." or name.startswith("visual"):
                vision += n
            else:
                text += n
    emb = model.get_input_embeddings().weight.numel()
    # parameters() lists a tied weight once
    return Counts(sum(p.numel() for p in model.parameters()), text, vision, head, emb)


def vision_attention_windows(config, grid: tuple[int, int, int]) -> tuple[int, int]:
    """(sum of squared window lengths for windowed blocks, for full blocks) of one video, in patches."""
    t, h, w = grid
    v = config.vision_config
    win = v.window_size // v.patch_size  # patches per window side (8 for 112 px)
    wins_h, wins_w = math.ceil(h / win), math.ceil(w / win)
    windowed = t * sum((min(win, h - i * win) * min(win, w - j * win)) ** 2 for i in range(wins_h) for j in range(wins_w))
    full = t * (h * w) ** 2
    return windowed, full


def vision_flops(config, counts: Counts, grid: tuple[int, int, int]) -> float:
    """FLOPs of the vision tower on one video: linear layers, and attention by window / full block."""
    v = config.vision_config
    windowed, full = vision_attention_windows(config, grid)
    n_full = len(v.fullatt_block_indexes)
    return 2.0 * counts.vision_linear * grid[0] * grid[1] * grid[2] + \
        4.0 * v.hidden_size * (windowed * (v.depth - n_full) + full * n_full)


def forward_flops(config, counts: Counts, seq_len: int, logits_tokens: int, grid: tuple[int, int, int]) -> float:
    """Model FLOPs of one forward pass of one sequence with its video (matmuls and attention)."""
    flops = 2.0 * counts.text_linear * seq_len + 2.0 * counts.lm_head * logits_tokens
    flops += text_attention_flops(config, seq_len * seq_len / 2)  # causal QK^T + AV
    return flops + vision_flops(config, counts, grid)


def text_attention_flops(config, pairs: float) -> float:
    """FLOPs of QK^T and AV over `pairs` (query, key) pairs in every text layer."""
    text = config.text_config
    return 4.0 * text.num_hidden_layers * text.hidden_size * pairs


def loss_pass_flops(config, counts: Counts, prompt_len: int, completion: int, generations: int,
                    grid: tuple[int, int, int], shared: bool, attention: str = "executed") -> float:
    """Forward FLOPs of one log-prob pass over G completions of `completion` tokens of one prompt.

    plain: G rows of prompt + completion, causal attention (what sdpa/flash compute without padding), the video
    encoded G times. shared (`versavid_r1.trainer.shared_prefix`): one packed row of (prompt - 1) + G x completion
    tokens, the video encoded once. Its attention, by `attention`: "executed" as the trainer runs it with sdpa
    (`PrefixBlockMask`: the prompt causally, then each completion against the prompt and all of itself),
    "needed" only the pairs the block mask allows, "dense" every pair of the packed row (eager attention).
    """
    if not shared:
        return generations * forward_flops(config, counts, prompt_len + completion, completion, grid)
    head = prompt_len - 1
    tokens = head + generations * completion
    flops = 2.0 * counts.text_linear * tokens + 2.0 * counts.lm_head * generations * completion
    flops += vision_flops(config, counts, grid)
    prompt_pairs = head * (head + 1) / 2  # causal, diagonal included
    if attention == "executed":
        pairs = prompt_pairs + generations * completion * (head + completion)
    elif attention == "needed":
        pairs = prompt_pairs + generations * (completion * head + completion * (completion + 1) / 2)
    elif attention == "dense":
        pairs = float(tokens) ** 2
    else:
        raise ValueError(f"attention must be 'executed', 'needed' or 'dense', got {attention!r}")
    return flops + text_attention_flops(config, pairs)


def generation_flops(config, counts: Counts, prompt_len: int, new_tokens: int, generations: int,
                     grid: tuple[int, int, int]) -> float:
    """FLOPs of the default rollout: one prefill of the prompt (video included), then G x T decode steps, each
    one token through the linear layers and the LM head, attending to the prompt and the tokens before it."""
    prefill = forward_flops(config, counts, prompt_len, 1, grid)
    per_token = 2.0 * counts.text_linear + 2.0 * counts.lm_head
    context = new_tokens * prompt_len + new_tokens * (new_tokens - 1) / 2  # keys seen over the T steps
    return prefill + generations * (new_tokens * per_token + text_attention_flops(config, context))


# Dense bf16 tensor-core peaks from the vendors' datasheets (TFLOP/s, no sparsity), matched on the device name.
DATASHEET_BF16_TFLOPS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H200",), 989.4),
    (("H100", "PCIE"), 756.0),
    (("H100", "NVL"), 835.0),
    (("H100",), 989.4),
    (("H800",), 989.4),
    (("A100",), 312.0),
    (("A800",), 312.0),
    (("L40S",), 362.1),
    (("L4",), 121.0),
)


def datasheet_bf16_tflops(device_name: str) -> Optional[float]:
    """The datasheet dense bf16 peak of a GPU by its name (torch.cuda.get_device_name), or None if unknown."""
    name = device_name.upper()
    for parts, tflops in DATASHEET_BF16_TFLOPS:
        if all(p in name for p in parts):
            return tflops
    return None
