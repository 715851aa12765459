"""Per-architecture parts of the tiny builds: the model config, the model class, the processor and chat template.

Every architecture shares the tokenizer (`tokenizer.py`) and the size knobs of `TinySpec`; what differs is here:

- `qwen2_vl`, `qwen2_5_vl`: Qwen2(.5)-VL, patch 14, `Qwen2VLVideoProcessor`;
- `qwen3_vl`: Qwen3-VL (patch 16, DeepStack from the first vision block, interleaved M-RoPE), `Qwen3VLProcessor`
  with `Qwen3VLVideoProcessor` (text timestamps before each frame group);
- `qwen3_vl_moe`: the same with a mixture-of-experts MLP in every text layer (`TINY_EXPERTS` experts, top 2);
- `qwen3_5`: Qwen3.5 (natively multimodal): one Gated DeltaNet (linear attention) layer before every full
  attention layer, partial rotary embedding, the Qwen3-VL processor;
- `causal_lm`: a text-only Qwen2 (the CPU judge).

The MoE and linear-attention sizes are fixed fractions of the `TinySpec` sizes (no extra knobs, so the build
record of the existing architectures is unchanged).
"""
from __future__ import annotations

from typing import Any

from .chat_template import QWEN35_CHAT_TEMPLATE, QWEN3_VL_CHAT_TEMPLATE, TEXT_CHAT_TEMPLATE, VL_CHAT_TEMPLATE

QWEN2_ARCHS = ("qwen2_5_vl", "qwen2_vl")
QWEN3_ARCHS = ("qwen3_vl", "qwen3_vl_moe", "qwen3_5")
ARCHS = QWEN2_ARCHS + QWEN3_ARCHS + ("causal_lm",)
TINY_EXPERTS = 4  # qwen3_vl_moe: experts per MoE layer (2 routed per token)
QWEN3_PATCH = 16


def mrope_section(rotary_dim: int) -> list[int]:
    """Split rotary_dim/2 frequencies over (time, height, width) in Qwen's 16:24:24 ratio."""
    half = rotary_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def text_kwargs(spec, ids: dict[str, int], vocab_size: int) -> dict[str, Any]:
    """The language model's settings shared by every architecture."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        hidden_act="silu",
        rms_norm_eps=1e-6,
        use_sliding_window=False,
        max_window_layers=spec.num_hidden_layers,
        bos_token_id=ids["bos_token_id"],
        eos_token_id=ids["eos_token_id"],
        pad_token_id=ids["pad_token_id"],
    )


def _special(ids: dict[str, int]) -> dict[str, int]:
    return dict(image_token_id=ids["image_token_id"], video_token_id=ids["video_token_id"],
                vision_start_token_id=ids["vision_start_token_id"], vision_end_token_id=ids["vision_end_token_id"])


def vl_config(arch: str, spec, ids: dict[str, int], vocab_size: int):
    """The transformers config of a tiny `arch` model."""
    if arch in QWEN3_ARCHS:
        return _qwen3_config(arch, spec, ids, vocab_size)
    text = text_kwargs(spec, ids, vocab_size)
    head_dim = spec.hidden_size // spec.num_attention_heads
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": spec.rope_theta,
                               "mrope_section": mrope_section(head_dim)}
    if arch == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        depth = spec.vision_depth
        full = sorted({i for i in range(depth) if (i + 1) % 8 == 0} | {depth - 1})
        vision = dict(depth=depth, hidden_size=spec.vision_hidden_size, hidden_act="silu",
                      intermediate_size=spec.vision_intermediate_size, num_heads=spec.vision_num_heads,
                      in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                      tokens_per_second=spec.tokens_per_second, window_size=spec.vision_window_size,
                      out_hidden_size=spec.hidden_size, fullatt_block_indexes=full)
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision,
                                tie_word_embeddings=spec.tie_word_embeddings, **_special(ids))
    from transformers import Qwen2VLConfig

    if spec.vision_intermediate_size % spec.vision_hidden_size:
        raise ValueError("qwen2_vl: vision_intermediate_size must be a multiple of vision_hidden_size")
    vision = dict(depth=spec.vision_depth, embed_dim=spec.vision_hidden_size, hidden_size=spec.hidden_size,
                  hidden_act="quick_gelu", mlp_ratio=spec.vision_intermediate_size // spec.vision_hidden_size,
                  num_heads=spec.vision_num_heads, in_channels=3, patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2)
    return Qwen2VLConfig(text_config=text, vision_config=vision,
                         tie_word_embeddings=spec.tie_word_embeddings, **_special(ids))


def _qwen3_config(arch: str, spec, ids: dict[str, int], vocab_size: int):
    import transformers

    head_dim = spec.hidden_size // spec.num_attention_heads
    text = text_kwargs(spec, ids, vocab_size)
    text["head_dim"] = head_dim
    rope = {"rope_type": "default", "rope_theta": spec.rope_theta, "mrope_interleaved": True,
            "mrope_section": mrope_section(head_dim)}
    vision = dict(depth=spec.vision_depth, hidden_size=spec.vision_hidden_size, hidden_act="gelu_pytorch_tanh",
                  intermediate_size=spec.vision_intermediate_size, num_heads=spec.vision_num_heads, in_channels=3,
                  patch_size=QWEN3_PATCH, spatial_merge_size=2, temporal_patch_size=2,
                  out_hidden_size=spec.hidden_size, num_position_embeddings=64)
    if arch == "qwen3_5":
        # Qwen3.5 rotates a quarter of each head in the real models; here half, so each of t/h/w gets a frequency.
        rope.update(partial_rotary_factor=0.5, mrope_section=mrope_section(head_dim // 2))
        layers = ["linear_attention" if i % 2 == 0 else "full_attention" for i in range(spec.num_hidden_layers)]
        text.update(layer_types=layers, linear_conv_kernel_dim=4, linear_key_head_dim=head_dim,
                    linear_value_head_dim=head_dim, linear_num_key_heads=spec.num_key_value_heads,
                    linear_num_value_heads=spec.num_attention_heads)
        cls = transformers.Qwen3_5Config
    else:
        vision["deepstack_visual_indexes"] = [0]
        cls = transformers.Qwen3VLConfig
        if arch == "qwen3_vl_moe":
            # 3/8 of hidden: neither an expert tensor nor its transpose is square, so a load that transposes it
            # wrongly fails instead of passing unnoticed (compat/zero3_transpose.py)
            text.update(num_experts=TINY_EXPERTS, num_experts_per_tok=2, decoder_sparse_step=1,
                        moe_intermediate_size=3 * spec.hidden_size // 8)
            cls = transformers.Qwen3VLMoeConfig
    text["rope_parameters"] = rope
    for key in ("use_sliding_window", "max_window_layers"):
        text.pop(key)
    return cls(text_config=text, vision_config=vision, tie_word_embeddings=spec.tie_word_embeddings, **_special(ids))


def model_class(arch: str):
    """The transformers class the tiny `arch` model is built with."""
    import transformers

    if arch == "causal_lm":
        return transformers.Qwen2ForCausalLM
    from versavid_r1.families import model_class as family_class

    return family_class(arch)


def chat_template(arch: str) -> str:
    """The chat template of `arch` (each as the real models render video prompts; chat_template.py)."""
    if arch == "causal_lm":
        return TEXT_CHAT_TEMPLATE
    return {"qwen3_vl": QWEN3_VL_CHAT_TEMPLATE, "qwen3_vl_moe": QWEN3_VL_CHAT_TEMPLATE,
            "qwen3_5": QWEN35_CHAT_TEMPLATE}.get(arch, VL_CHAT_TEMPLATE)


def processor(arch: str, tokenizer, spec):
    """The multimodal processor of a tiny `arch` dir, with the family's own image and video processors."""
    from transformers import (
        Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor, Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    qwen3 = arch in QWEN3_ARCHS
    patch = QWEN3_PATCH if qwen3 else 14
    # Fresh size dicts: these classes' __init__ writes min/max pixels into the dict it is given,
    # which would otherwise be the class attribute shared by every instance.
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": spec.image_min_pixels, "longest_edge": spec.image_max_pixels},
        patch_size=patch, temporal_patch_size=2, merge_size=2)
    video_cls = Qwen3VLVideoProcessor if qwen3 else Qwen2VLVideoProcessor
    video_processor = video_cls(
        size={"shortest_edge": spec.video_min_pixels, "longest_edge": spec.video_max_pixels},
        patch_size=patch, temporal_patch_size=2, merge_size=2,
        # qwen-vl-utils' behaviour (an even share of a total-token budget per frame); also silences
        # transformers' "default will change" warning.
        cap_pixels_per_frame=True)
    cls = Qwen3VLProcessor if qwen3 else Qwen2_5_VLProcessor if arch == "qwen2_5_vl" else Qwen2VLProcessor
    return cls(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
               chat_template=chat_template(arch))
