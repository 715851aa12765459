"""The log-prob pass of one GRPO micro-batch without TRL (the GPU machine may lack it): G completions of one
video prompt, forward + backward, either as TRL runs it (every row runs prompt + completion with its own copy of
the video) or shared-prefix (`versavid_r1.trainer.shared_prefix`: the prompt and its video once, the
completions packed after it). Both paths end in the same chunked log-prob head, so they differ only in what
the trainer changes. Imports only torch and transformers.
"""
from __future__ import annotations

from typing import Any

import _common as C


def chunked_logps(hidden, weight, labels, chunk: int = 4096):
    """log p(label) for hidden states [T, d] under the LM head `weight` [V, d], a chunk of positions at a time
    (checkpointed: only one chunk's [chunk, V] logits exist at once, in the forward and in the backward)."""
    import torch
    from torch.utils.checkpoint import checkpoint

    def piece(h, y):
        logits = (h @ weight.T).float()
        return logits.log_softmax(-1).gather(-1, y[:, None])[:, 0]

    parts = [checkpoint(piece, h, y, use_reentrant=False) for h, y in zip(hidden.split(chunk), labels.split(chunk))]
    return torch.cat(parts)


def completion_batch(config, prompt, generations: int, completion: int, device, seed: int = 1):
    """(input_ids [G, P + c], attention_mask) of G random completions (ordinary tokens, no EOS) of `prompt`."""
    import torch

    g = torch.Generator().manual_seed(seed)
    low = min(config.image_token_id, config.video_token_id, config.vision_start_token_id,
              config.text_config.bos_token_id)
    head = torch.tensor(prompt.input_ids)
    ids = torch.stack([torch.cat([head, torch.randint(0, low, (completion,), generator=g)])
                       for _ in range(generations)]).to(device)
    return ids, torch.ones_like(ids)


def _video(prompt, rows: int, device) -> dict:
    vi = C.import_trainer_module("video_inputs")
    return vi.collate_video_fields([prompt] * rows, device=device)


def plain_logps(model, config, prompt, ids, mask, completion: int):
    """TRL's way: one forward of the G rows, each with its video; log-probs of the completion tokens [G * c]."""
    vi = C.import_trainer_module("video_inputs")
    video = _video(prompt, ids.shape[0], ids.device)
    video["mm_token_type_ids"] = vi.mm_token_type_ids(ids, config.video_token_id, config.image_token_id)
    hidden = model.model(input_ids=ids, attention_mask=mask, use_cache=False, **video).last_hidden_state
    start = ids.shape[1] - completion - 1
    h = hidden[:, start:start + completion].reshape(-1, hidden.shape[-1])
    return chunked_logps(h, model.lm_head.weight, ids[:, -completion:].reshape(-1))


def shared_logps(model, config, prompt, ids, mask, completion: int):
    """The trainer's shared-prefix layout: the prompt once, the G completions after it; log-probs [G * c]."""
    sp = C.import_trainer_module("shared_prefix")
    vi = C.import_trainer_module("video_inputs")
    prepared = sp.prepare(
        model, ids, mask, completion, keys=[0] * ids.shape[0],
        video_fields=lambda rows: _video(prompt, len(rows), ids.device),
        mm_token_type_ids=vi.mm_token_type_ids(ids, config.video_token_id, config.image_token_id),
        pad_token_id=config.text_config.pad_token_id,
    )
    if isinstance(prepared, str):
        raise RuntimeError(f"shared-prefix layout refused: {prepared}")
    inputs, packed = prepared
    hidden = model.model(**inputs, use_cache=False).last_hidden_state
    keep = packed.shift_labels != -100
    return chunked_logps(hidden[keep], model.lm_head.weight, packed.shift_labels[keep])


PATHS = {"plain": plain_logps, "shared": shared_logps}


def loss_pass(model, config, prompt, ids, mask, completion: int, path: str, advantages) -> Any:
    """Forward + backward of a GRPO-style loss (advantage-weighted mean log-prob) on one path; returns the loss."""
    logps = PATHS[path](model, config, prompt, ids, mask, completion).view(ids.shape[0], completion)
    loss = -(advantages[:, None] * logps).mean()
    loss.backward()
    return loss.detach()
