"""The two shared passes of `Qwen25VLGRPOTrainer`: work that the G completions of one prompt have in common is
done once per prompt.

- Generation (`shared_prefill.py`): with transformers generate, each unique prompt (vision tower included) is
  prefilled once and its G completions decoded from copies of its KV cache.
- Log-probs (`shared_prefix.py`): each prompt of a micro-batch runs once, its rows' completions packed after it
  under a block mask; exact, so the loss is the plain path's.

Each pass says when it cannot run (and the trainer then takes TRL's path); the methods here only decide and
run them, the trainer's overrides call them.
"""
from __future__ import annotations

import logging

import torch
from trl.extras.profiling import profiling_context
from trl.models import unwrap_model_for_generation

from . import shared_prefix
from .shared_prefill import (
    completions_until_eos,
    generate_with_shared_prefill,
    is_grouped,
    unsupported_by_shared_prefill,
)
from .video_inputs import collate_generation_fields, collate_video_fields, mm_token_type_ids

log = logging.getLogger(__name__)


class SharedPassesMixin:
    """Mixed into the trainer before `GRPOTrainer`; reads the trainer's settings (`share_prompt_prefill`,
    `share_prompt_loss`) and its active batch of video inputs (`_active_videos`)."""

    def _shared_prefix_logps(self, model, rows, ids, mask, logits_to_keep, compute_entropy, blockers=()):
        """(log-probs, entropies) of one chunk with each prompt run once for its rows, or None (reason logged once).
        `blockers`: what else this forward must compute that the packed layout cannot (e.g. an MoE router loss)."""
        reason = None if self.share_prompt_loss else "off"
        if reason is None and blockers:
            reason = ", ".join(blockers)
        if reason is None and not all(r.video_fields for r in rows):
            reason = "rows without a video"
        if reason is None:
            prepared = shared_prefix.prepare(
                model, ids, mask, logits_to_keep, keys=[id(r) for r in rows],
                video_fields=lambda idx: collate_video_fields([rows[i] for i in idx], device=ids.device),
                mm_token_type_ids=mm_token_type_ids(ids, self._video_pad_token_id, self._image_pad_token_id),
                pad_token_id=self._tokenizer.pad_token_id,
            )
            reason = prepared if isinstance(prepared, str) else None
        if reason is not None:
            if reason != "off" and reason not in self._shared_prefix_fallbacks:
                self._shared_prefix_fallbacks.add(reason)
                log.warning("shared-prefix log-probs not used (%s): this forward runs every row's prompt", reason)
            return None
        inputs, packed = prepared
        with self.accelerator.autocast():
            out = model(**inputs, shift_labels=packed.shift_labels, fused_lm_head=True)
        entropy = shared_prefix.unpack(out.entropy, packed) if compute_entropy else None
        return shared_prefix.unpack(out.log_probs, packed), entropy

    def _shared_prefill_enabled(self) -> bool:
        """The settings allow the shared prefill (the same answer on every rank: no collective needed): transformers
        generate, no continuous batching, no tools (their extra turns differ per rank), a cache it can combine with."""
        if not self.share_prompt_prefill or self.use_vllm or self.use_transformers_continuous_batching or self.tools:
            return False
        reason = unsupported_by_shared_prefill(self.generation_config)
        if reason is not None:
            if not getattr(self, "_prefill_fallback_logged", False):
                log.warning("shared prompt prefill off: %s", reason)
                self._prefill_fallback_logged = True
            return False
        return True

    def _whole_groups(self, generation_batch) -> bool:
        """True when the generation batch is whole groups of G rows (TRL's layout), so groups can be shuffled."""
        g = self.num_generations
        return g > 1 and len(generation_batch) % g == 0

    def _can_share_prefill(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images) -> bool:
        """This rank's batch suits the shared prefill: the batch's own rows in TRL's layout (G consecutive copies
        per prompt), no images, no tool images; anything else takes TRL's path."""
        rows = self._active_videos
        if not self._shared_prefill_enabled():
            return False
        if has_tool_images or (images is not None and any(images)) or "pixel_values" in (multimodal_fields or {}):
            return False
        if not rows or len(rows) != len(prompt_ids) or not is_grouped(prompt_ids, num_generations):
            return False
        return all(list(r.input_ids) == list(p) for r, p in zip(rows, prompt_ids))

    def _generate_shared_prefill(self, num_generations: int) -> list[list[int]]:
        """G completions per unique row of the active batch, one prefill per unique prompt (rows grouped)."""
        unique = self._active_videos[::num_generations]
        prompt_ids, fields = collate_generation_fields(unique, self._video_pad_token_id)
        with (
            profiling_context(self, "transformers.generate"),
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                generation_kwargs=self.generation_kwargs,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as unwrapped_model,
            torch.no_grad(),
            self._dist.summon_full_params(self.model_wrapped, recurse=False),
        ):
            out, width = generate_with_shared_prefill(
                unwrapped_model, prompt_ids, fields, num_generations, self.generation_config,
                self._tokenizer.pad_token_id, self.pad_to_multiple_of, self.accelerator.device,
            )
        return completions_until_eos(out[:, width:], self.eos_token_ids)
