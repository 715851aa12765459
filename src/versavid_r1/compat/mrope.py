"""Qwen2.5-VL video time positions (M-RoPE) as vLLM 0.31 computes them.

The upstream bug: transformers 5.17's `Qwen2_5_VLModel.get_rope_index` computes the temporal step of a
video as `tokens_per_second * int(second_per_grid_ts)`. The seconds per temporal grid are truncated
BEFORE scaling, so a 16-frame clip shorter than 8 s (`second_per_grid_ts < 1`) gives every frame the same
temporal position (the model cannot see frame order), and longer clips get a shrunken spacing. Earlier
releases truncated too (4.5x cast `second_per_grid_t` to the integer dtype of the grid index before
multiplying). vLLM multiplies in float and floors per grid; vLLM 0.31 (`Qwen2_5_VLForConditionalGeneration.
iter_mm_grid_thw` / `get_mrope_input_positions`) takes `second_per_grid_ts` as a Python float (the float32
value the processor returned), forms `t_factor = second_per_grid_ts * tokens_per_second` in float64 and
gives grid i the position `int(i * t_factor)` in float64 (numpy). Fixed in transformers by PR #48669
(after 5.17); vLLM 0.31 requires transformers < 5.18, so upgrading is not the way. The float64 product
matters: in float32, `i * second_per_grid_ts` rounds up to the next integer step for about 1.6 % of
realistic clip lengths (80 frames at 24 fps: grid 6 lands on 5 instead of vLLM's 4), and with
`use_vllm` the rollout would then be sampled under other positions than the loss scores.

The same function (since transformers 5.3) also starts the text that follows a video at
`video start + max(grid h, grid w) / merge`, ignoring how far the video's temporal positions reach, so the
text after a long clip reuses positions of the video; vLLM starts it one past the largest position used so
far. `reference_rope_index` below follows vLLM in both respects and keeps 5.17's conventions everywhere
else (grouping by `mm_token_type_ids`, padded positions 0, `rope_deltas` relative to the unpadded length,
as 5.17's generation code consumes them).

`versavid_r1.compat.install()` (run by `import versavid_r1`) calls `patch_module` when transformers'
Qwen2.5-VL modeling module is imported (at once if it already is): `Qwen2_5_VLModel.get_rope_index` is
replaced on the class, so every forward, `generate` and `rope_deltas` reader uses it. The patch switches itself off
when the installed function already agrees with the reference on a small synthetic probe (a sub-second
grid and a video whose temporal extent exceeds its spatial one): decided by behaviour, not by version.
See docs/stack.md.
"""
from __future__ import annotations

import itertools
import logging
from types import ModuleType
from typing import Any, Callable, Optional

import torch

log = logging.getLogger(__name__)

TEXT, IMAGE, VIDEO = 0, 1, 2  # mm_token_type_ids values of Qwen2(.5)-VL

_ORIGINAL = "_versavid_original_get_rope_index"  # class attribute keeping the replaced function


def temporal_positions(num_grids: int, second_per_grid: float, tokens_per_second: float) -> torch.Tensor:
    """`int(i * (second_per_grid * tokens_per_second))` for grids i = 0..num_grids-1, in float64 as vLLM 0.31
    computes it (the factor first, as a Python float; then one float64 product per grid, truncated)."""
    factor = float(second_per_grid) * float(tokens_per_second)
    return (torch.arange(num_grids, dtype=torch.float64) * factor).long()


def _vision_block(start: int, grid_thw, merge: int, step_seconds: Optional[float], tokens_per_second: float):
    t, h, w = (int(x) for x in grid_thw)
    h, w = h // merge, w // merge
    if step_seconds is None:  # an image: its temporal grids are consecutive
        temporal = torch.arange(t)
    else:
        temporal = temporal_positions(t, step_seconds, tokens_per_second)
    block = torch.stack([
        temporal.repeat_interleave(h * w),
        torch.arange(h).repeat_interleave(w).repeat(t),
        torch.arange(w).repeat(t * h),
    ])
    return block + start


def reference_rope_index(
    self,
    input_ids: torch.LongTensor,
    mm_token_type_ids: torch.Tensor,
    image_grid_thw: Optional[torch.Tensor] = None,
    video_grid_thw: Optional[torch.Tensor] = None,
    second_per_grid_ts: Optional[torch.Tensor] = None,
    attention_mask: Optional[torch.Tensor] = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for `Qwen2_5_VLModel.get_rope_index` (transformers 5.17 signature) with vLLM's temporal step
    and text placement (see the module docstring)."""
    vision = self.config.vision_config
    merge, tokens_per_second = int(vision.spatial_merge_size), vision.tokens_per_second
    grids = {
        IMAGE: iter(image_grid_thw.tolist() if image_grid_thw is not None else []),
        VIDEO: iter(video_grid_thw.tolist() if video_grid_thw is not None else []),
    }
    seconds = second_per_grid_ts.tolist() if isinstance(second_per_grid_ts, torch.Tensor) else second_per_grid_ts
    seconds = iter(seconds if seconds is not None else [])
    batch, length = input_ids.shape
    position_ids = torch.zeros(3, batch, length, dtype=input_ids.dtype, device=input_ids.device)
    deltas = []
    for b in range(batch):
        keep = attention_mask[b].bool() if attention_mask is not None else torch.ones(length, dtype=torch.bool)
        types = mm_token_type_ids[b][keep.to(mm_token_type_ids.device)].tolist()
        blocks, next_pos = [], 0
        for kind, group in itertools.groupby(types):
            remaining = sum(1 for _ in group)
            if kind == TEXT:
                blocks.append(torch.arange(remaining).expand(3, -1) + next_pos)
                next_pos += remaining
                continue
            while remaining > 0:  # one or more images / videos in a row
                grid = next(grids[kind])
                step = float(next(seconds, 1.0)) if kind == VIDEO else None
                block = _vision_block(next_pos, grid, merge, step, tokens_per_second)
                blocks.append(block)
                next_pos = int(block.max()) + 1  # text resumes one past the largest position used
                remaining -= block.shape[1]
        positions = torch.cat(blocks, dim=1) if blocks else torch.zeros(3, 0, dtype=torch.long)
        position_ids[:, b, keep.to(position_ids.device)] = positions.to(position_ids)
        deltas.append(int(positions.max()) + 1 - len(types) if positions.numel() else 0)
    return position_ids, torch.tensor(deltas, device=input_ids.device).unsqueeze(1)


# ------------------------------------------------------------------ the probe and the patch -------
def _probe_inputs(merge: int = 2):
    """A left-padded 3-row batch of text, video, text: a 4-grid video of 0.625 s per grid (a 5 s 16-frame
    clip), a 3-grid one of 1.5 s per grid and an 8-grid one of 2 / 4.8 s per grid (16 of 80 frames at 24 fps,
    where float32 arithmetic puts grid 6 one position later than vLLM's float64), 2x2 merged patches each:
    every upstream difference shows."""
    rows, grids, seconds = [], [], []
    for t, sec in ((4, 0.625), (3, 1.5), (8, 2 / 4.8)):
        h = w = 2 * merge
        rows.append([TEXT] * 3 + [VIDEO] * (t * (h // merge) * (w // merge)) + [TEXT] * 2)
        grids.append([t, h, w])
        seconds.append(sec)
    width = max(len(r) for r in rows) + 2
    types = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        types[i, width - len(r):] = torch.tensor(r)
        mask[i, width - len(r):] = 1
    ids = torch.where(types == VIDEO, 7, 3)
    return dict(input_ids=ids, mm_token_type_ids=types, video_grid_thw=torch.tensor(grids),
                second_per_grid_ts=torch.tensor(seconds, dtype=torch.float32), attention_mask=mask)


def agrees_with_reference(get_rope_index: Callable, model_class: type) -> bool:
    """True when `get_rope_index` (unbound, as found on `model_class`) gives the reference positions and
    deltas on the probe. A probe that cannot run (a changed signature) counts as disagreement."""
    from transformers import Qwen2_5_VLConfig

    probe = model_class.__new__(model_class)  # no weights: the function only reads config (+ helpers)
    object.__setattr__(probe, "config", Qwen2_5_VLConfig(vision_config={"spatial_merge_size": 2,
                                                                         "tokens_per_second": 2}))
    inputs = _probe_inputs()
    want = reference_rope_index(probe, **inputs)
    try:
        got = get_rope_index(probe, **inputs)
    except Exception as err:  # noqa: BLE001 - any failure means: do not trust the installed function
        log.warning("Qwen2.5-VL rope-index probe could not run the installed function (%s)", err)
        return False
    return all(torch.equal(g.cpu().long(), w.cpu().long()) for g, w in zip(got, want))


def patch_module(module: ModuleType) -> bool:
    """Replace `module.Qwen2_5_VLModel.get_rope_index` by the reference unless it already agrees with it.
    Returns True when the patch is (now) in place."""
    cls = getattr(module, "Qwen2_5_VLModel", None)
    if cls is None:
        return False
    current = getattr(cls, "get_rope_index", None)
    if current is reference_rope_index:
        return True
    if agrees_with_reference(current, cls):
        log.info("transformers' Qwen2.5-VL get_rope_index already matches Qwen's reference; not patched")
        return False
    setattr(cls, _ORIGINAL, current)
    cls.get_rope_index = reference_rope_index
    log.info("patched Qwen2.5-VL get_rope_index: float temporal step floored per grid (transformers PR #48669)")
    return True


def original_rope_index(model_class: type) -> Optional[Callable]:
    """The installed transformers function the patch replaced on `model_class` (None if not replaced)."""
    return model_class.__dict__.get(_ORIGINAL)
