"""One prompt prefill (vision tower + prompt tokens) shared by the G completions of that prompt.

Why by hand: GRPO samples G completions per prompt, and both TRL (its sampler repeats every prompt G times)
and transformers (`generate(num_return_sequences=G)` expands the inputs in `_expand_inputs_for_generation`
before the first forward) run the prompt G times: the vision tower encodes the same video G times and the
~1,700 prompt tokens are prefilled G times. Nothing in transformers or TRL shares that prefill (vLLM's
prefix caching does, for the vLLM path only). On a CPU the prefill is compute-bound and costs G times as
much in a batch, so it dominated the rollout (BENCHMARKS.md §1).

Here each UNIQUE prompt is run once, without its last token, filling a `DynamicCache`; the cache (keys and
values, and Qwen3.5's linear-attention states) and the model's multimodal-rope offsets (`rope_deltas`, computed
by that forward) are repeat-interleaved G times, and `generate` continues from the cache on the G copies of the full prompts: only the last prompt
token and the completion are computed per copy. Left padding of prompts of different lengths is kept as
the plain batched path has it (same padded width, same attention mask), so the positions are the same.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from transformers import DynamicCache


def is_grouped(prompt_ids: Sequence[Sequence[int]], group_size: int) -> bool:
    """True when the batch is consecutive runs of `group_size` identical prompts (TRL's layout), G > 1."""
    if group_size < 2 or not prompt_ids or len(prompt_ids) % group_size:
        return False
    for start in range(0, len(prompt_ids), group_size):
        first = list(prompt_ids[start])
        if any(list(prompt_ids[start + j]) != first for j in range(1, group_size)):
            return False
    return True


def unsupported_by_shared_prefill(generation_config) -> Optional[str]:
    """Why `generate_with_shared_prefill` cannot run with this generation config (None when it can).

    It hands `generate` a ready `DynamicCache`; transformers refuses a `cache_implementation` (GRPOConfig's
    `cache_implementation`: "static", "offloaded", ...) next to a given cache ("Passing both
    `cache_implementation` ... and `past_key_values` ... is unsupported"), so such runs take TRL's path.
    """
    impl = getattr(generation_config, "cache_implementation", None)
    if impl is not None:
        return (f"cache_implementation={impl!r} is set; transformers cannot combine it with the shared prefill's "
                "ready KV cache, so generation takes TRL's path (each prompt prefilled per completion)")
    return None


def left_pad_batch(
    prompt_ids: Sequence[Sequence[int]],
    fields: dict[str, Any],
    pad_token_id: int,
    pad_to_multiple_of: Optional[int] = None,
    device: Optional[torch.device] = None,
) -> dict[str, torch.Tensor]:
    """`input_ids`, `attention_mask` and the multimodal fields as TRL's `_generate_single_turn` pads them:
    left padding, per-token list fields (e.g. `mm_token_type_ids`) padded with 0, tensors kept."""
    from trl.trainer.utils import pad  # here, not at the top: the GPU benchmark imports this module without TRL

    ids = [torch.tensor(list(p), dtype=torch.long) for p in prompt_ids]
    out = {
        "input_ids": pad(ids, padding_value=pad_token_id, padding_side="left", pad_to_multiple_of=pad_to_multiple_of),
        "attention_mask": pad(
            [torch.ones_like(t) for t in ids], padding_value=0, padding_side="left",
            pad_to_multiple_of=pad_to_multiple_of,
        ),
    }
    for key, value in fields.items():
        if isinstance(value, torch.Tensor):
            out[key] = value
        elif isinstance(value, list) and value and isinstance(value[0], list):
            out[key] = pad([torch.tensor(x) for x in value], padding_value=0, padding_side="left",
                           pad_to_multiple_of=pad_to_multiple_of)
        else:
            raise TypeError(f"multimodal field {key!r} of type {type(value).__name__} is not supported here")
    return {k: v.to(device) for k, v in out.items()} if device is not None else out


def prefill_cache(model, inputs: dict[str, torch.Tensor]) -> DynamicCache:
    """Run the prompts without their last token (video included) once; return the filled KV cache.

    The last token stays for `generate`, which needs at least one uncached token to produce the first logits.
    """
    cache = DynamicCache(config=model.config)
    head = {k: (v[:, :-1] if k in ("input_ids", "attention_mask", "mm_token_type_ids") else v)
            for k, v in inputs.items()}
    model(**head, past_key_values=cache, use_cache=True, logits_to_keep=1)
    return cache


def expand_cache(cache: DynamicCache, repeats: int) -> DynamicCache:
    """Repeat every row of the cache `repeats` times in place (row i -> rows i*repeats ... i*repeats+repeats-1).

    Attention layers repeat their keys and values (`batch_repeat_interleave`); linear-attention layers (Qwen3.5's
    Gated DeltaNet) hold a convolution and a recurrent state per row instead, which transformers 5.17's layer has no
    method to repeat, so they are repeated here."""
    for layer in cache.layers:
        if hasattr(layer, "recurrent_states"):
            _repeat_linear_states(layer, repeats)
        if callable(getattr(layer, "batch_repeat_interleave", None)):
            layer.batch_repeat_interleave(repeats)
    return cache


def _repeat_linear_states(layer, repeats: int) -> None:
    for states in (layer.conv_states, layer.recurrent_states):
        for idx, state in states.items():
            if state is not None:
                states[idx] = state.repeat_interleave(repeats, dim=0)


def expand_rope_deltas(model, repeats: int) -> int:
    """Repeat-interleave the per-row `rope_deltas` that the prefill left on the VL base model.

    With a cache present, generation places the new tokens at `attention_mask.cumsum - 1 + rope_deltas`
    (`_prepare_position_ids_for_generation`), so the offsets must have one row per copy. Returns the number
    of modules updated (0 for a model without multimodal rope)."""
    updated = 0
    for module in model.modules():
        deltas = getattr(module, "rope_deltas", None)
        if isinstance(deltas, torch.Tensor):
            module.rope_deltas = deltas.repeat_interleave(repeats, dim=0)
            updated += 1
    return updated


def generate_with_shared_prefill(
    model,
    unique_prompt_ids: Sequence[Sequence[int]],
    fields: dict[str, Any],
    num_generations: int,
    generation_config,
    pad_token_id: int,
    pad_to_multiple_of: Optional[int] = None,
    device: Optional[torch.device] = None,
) -> tuple[torch.Tensor, int]:
    """(prompt+completion ids [U*G, W+T], padded prompt width W) for G completions of each unique prompt.

    `fields` are the multimodal fields of the UNIQUE prompts (`collate_generation_fields` of one row per
    prompt). Rows of the result are grouped by prompt, like TRL's repeated batch. Call under `no_grad`."""
    inputs = left_pad_batch(unique_prompt_ids, fields, pad_token_id, pad_to_multiple_of, device)
    return generate_from_padded(model, inputs, num_generations, generation_config)


def generate_from_padded(model, inputs: dict[str, torch.Tensor], num_generations: int, generation_config):
    """`generate_with_shared_prefill` from already left-padded inputs of the unique prompts (`left_pad_batch`)."""
    cache = expand_cache(prefill_cache(model, inputs), num_generations)
    expand_rope_deltas(model, num_generations)
    ids = inputs["input_ids"].repeat_interleave(num_generations, dim=0)
    mask = inputs["attention_mask"].repeat_interleave(num_generations, dim=0)
    out = model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache,
                         generation_config=generation_config)
    return out, ids.shape[1]


def completions_until_eos(completion_ids: torch.Tensor, eos_token_ids: Sequence[int]) -> list[list[int]]:
    """Each row's tokens up to and including its first EOS (what TRL keeps of a padded `generate` output)."""
    eos = torch.tensor(list(eos_token_ids))
    out = []
    for row in completion_ids.cpu():
        hits = torch.isin(row, eos).nonzero()
        end = int(hits[0]) + 1 if len(hits) else row.numel()
        out.append(row[:end].tolist())
    return out
