"""Shared-prefix log-prob forward: the rows of one prompt run their prompt (vision tower included) once.

Why by hand: GRPO scores G completions of every prompt, and TRL's log-prob forward (policy with gradients,
old policy, reference model) runs each row as [prompt, completion]: the vision tower encodes the same video
G times and the ~1,700 prompt tokens go through the language model G times. Neither TRL nor transformers
shares that prefix in a training forward (verl ships Prefix Grouper for text models under FSDP only).

Layout (one packed row per prompt of the micro-batch, batch dim = number of prompts):

    [ prompt without its last token | x c1 | x c2 | ... | x cG | pad ]

`x` is the prompt's last token, repeated at the head of every completion segment and followed by that
completion's tokens except its last one, so every position predicts exactly one next token (the fused head
takes `shift_labels`); a completion of c tokens is a segment of c positions. A 4D boolean mask lets the
prompt attend causally to itself and every segment attend to the whole prompt and causally to itself only;
padding attends to itself only. M-RoPE positions are those of the plain rows, computed by the model's own
`get_rope_index` on the plain [prompt, completion] row of each prompt with the longest completion (so
positions, and any fix applied to that method, are the plain path's by construction) and gathered into the
packed layout.

The result is exact, not an approximation: each completion token sees the same keys at the same positions
as in its own row, and the prompt's gradient is the sum over its completions, as autograd accumulates it.
Needs an attention kernel that takes a custom 4D mask (sdpa, eager); flash-attention-2 cannot take one.

With sdpa the mask is a `PrefixBlockMask`: a [U, 1, L, L] boolean tensor that holds no [L, L] data (its one
stored value is broadcast), carrying the packed layout. Handed to `scaled_dot_product_attention` it computes
the attention block by block (the prompt causally, then each completion against the prompt and itself), so
only the (query, key) pairs the mask allows are computed: at the paper's shapes with 2,048-token completions,
62 M pairs per layer instead of the dense 325 M, and the dense mask (about 1 GB of peak memory to build at L
about 18k) is never made. The result is the dense mask's (tested against it); any other operation on the
mask builds the dense mask first (`block_mask`) and gets the same result, only slower.
This module imports only torch: the GPU benchmark loads it from its file without TRL.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Optional, Sequence, Union

import torch

# Attention implementations whose kernels take an explicit [B, 1, L, L] mask from the mask mapping.
MASK_KERNELS = ("sdpa", "eager")


@dataclass(frozen=True)
class PrefixGroup:
    """Rows of one micro-batch that share a prompt."""

    rows: tuple[int, ...]
    prompt_len: int  # unpadded prompt tokens
    lengths: tuple[int, ...]  # completion tokens of each row (attention mask ones)


@dataclass(frozen=True)
class RowLayout:
    """One packed row: the prompt's first `prefix` tokens, then completion segments (offset, length), then
    padding from `length` on."""

    prefix: int
    segments: tuple[tuple[int, int], ...]
    length: int


@dataclass
class PackedBatch:
    """The packed forward's inputs and the map back to the plain [rows, completion] layout."""

    input_ids: torch.Tensor  # [U, L]
    position_ids: torch.Tensor  # [3, U, L]
    segment: torch.Tensor  # [U, L]: 0 prompt, k >= 1 completion k, -1 padding
    shift_labels: torch.Tensor  # [U, L]: the next token of each segment position, -100 elsewhere
    source: torch.Tensor  # [N, C]: flat index into [U * L] of each completion token's prediction
    valid: torch.Tensor  # [N, C] bool: completion tokens inside the attention mask
    groups: list[PrefixGroup]
    layout: list[RowLayout]

    @property
    def representatives(self) -> list[int]:
        """One row per packed row (its prompt's video fields go to the forward, in this order)."""
        return representatives(self.groups)

    @property
    def allowed(self) -> torch.Tensor:
        """The dense [U, 1, L, L] bool mask (query may attend key), built on demand: O(L^2) memory."""
        return block_mask(self.segment)


def representatives(groups: Sequence[PrefixGroup]) -> list[int]:
    """Each group's row with the longest completion: its positions cover every row of the group."""
    return [max(zip(g.lengths, g.rows), key=lambda lr: (lr[0], -lr[1]))[1] for g in groups]


def plan_groups(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int, keys: Sequence[Hashable]
) -> Union[list[PrefixGroup], str]:
    """Rows grouped by `keys` (same key = same prompt and video), or the reason the layout cannot be packed.

    TRL's rows are [left-padded prompt, right-padded completion]; the prompt mask must be a run of ones at the
    right end and the completion mask a run of ones from its start (tokens after the first EOS masked).
    """
    n, width = input_ids.shape
    prompt_width = width - logits_to_keep
    if len(keys) != n:
        raise ValueError(f"{len(keys)} keys for {n} rows")
    mask = attention_mask.bool().cpu()
    prompt_lens = mask[:, :prompt_width].sum(1)
    comp_lens = mask[:, prompt_width:].sum(1)
    cols = torch.arange(width)
    expected = (cols[None] >= prompt_width - prompt_lens[:, None]) & (cols[None] < prompt_width + comp_lens[:, None])
    if not torch.equal(expected, mask):
        return "the attention mask is not a left-padded prompt followed by a right-padded completion"
    if int(prompt_lens.min()) < 2:
        return "a prompt shorter than 2 tokens"
    by_key: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        by_key.setdefault(key, []).append(i)
    groups = []
    ids = input_ids.cpu()
    for rows in by_key.values():
        p = int(prompt_lens[rows[0]])
        head = ids[rows[0], prompt_width - p:prompt_width]
        if any(int(prompt_lens[r]) != p or not torch.equal(ids[r, prompt_width - p:prompt_width], head) for r in rows):
            return "rows with the same key have different prompt tokens"
        groups.append(PrefixGroup(tuple(rows), p, tuple(int(comp_lens[r]) for r in rows)))
    if all(len(g.rows) < 2 for g in groups):
        return "no two rows of the micro-batch share a prompt (the micro-batch splits every group)"
    return groups


def pack(
    groups: Sequence[PrefixGroup],
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    logits_to_keep: int,
    pad_token_id: int,
) -> PackedBatch:
    """Gather the plain rows (`input_ids` [N, W]) into packed rows. `position_ids` [3, U, W] are the M-RoPE
    positions of each group's representative row (`representatives`): the rows of a group share the prompt
    and their completions are text, so a completion token's position depends only on its column."""
    n, width = input_ids.shape
    prompt_width = width - logits_to_keep
    lengths = [g.prompt_len - 1 + sum(g.lengths) for g in groups]
    packed_len = max(lengths)
    u_count = len(groups)
    row_idx = torch.zeros(u_count, packed_len, dtype=torch.long)
    col_idx = torch.zeros(u_count, packed_len, dtype=torch.long)
    segment = torch.full((u_count, packed_len), -1, dtype=torch.long)  # 0 prompt, k >= 1 completion k, -1 pad
    source = torch.zeros(n, logits_to_keep, dtype=torch.long)
    valid = torch.zeros(n, logits_to_keep, dtype=torch.bool)
    layout = []
    for u, group in enumerate(groups):
        head = group.prompt_len - 1
        row_idx[u, :head] = group.rows[0]
        col_idx[u, :head] = torch.arange(prompt_width - group.prompt_len, prompt_width - 1)
        segment[u, :head] = 0
        offset = head
        for k, (row, c) in enumerate(zip(group.rows, group.lengths), start=1):
            # the prompt's last token, then the completion without its last token: position j predicts token j
            row_idx[u, offset:offset + c] = row
            col_idx[u, offset:offset + c] = torch.arange(prompt_width - 1, prompt_width - 1 + c)
            segment[u, offset:offset + c] = k
            source[row, :c] = u * packed_len + torch.arange(offset, offset + c)
            valid[row, :c] = True
            offset += c
        layout.append(RowLayout(head, tuple(_segments(head, group.lengths)), offset))
    device = input_ids.device
    row_idx, col_idx, segment = row_idx.to(device), col_idx.to(device), segment.to(device)
    real = segment >= 0
    ids = torch.where(real, input_ids[row_idx, col_idx], pad_token_id)
    next_col = (col_idx + 1).clamp(max=width - 1)
    labels = torch.where(segment > 0, input_ids[row_idx, next_col], -100)
    group_idx = torch.arange(u_count, device=device)[:, None].expand(-1, packed_len)
    positions = position_ids.to(device)[:, group_idx, col_idx] * real
    return PackedBatch(ids, positions, segment, labels, source.to(device), valid.to(device), list(groups), layout)


def _segments(head: int, lengths: Sequence[int]) -> list[tuple[int, int]]:
    """(offset, length) of each non-empty completion segment after a prompt head of `head` tokens."""
    out, offset = [], head
    for c in lengths:
        if c:
            out.append((offset, c))
        offset += c
    return out


def block_mask(segment: torch.Tensor) -> torch.Tensor:
    """[U, 1, L, L] bool from segment ids [U, L] (0 prompt, k >= 1 completion k, -1 padding)."""
    length = segment.shape[1]
    pos = torch.arange(length, device=segment.device)
    causal = pos[None, :] <= pos[:, None]  # [q, k]
    seg_q, seg_k = segment[:, :, None], segment[:, None, :]
    allowed = causal[None] & ((seg_k == 0) | (seg_k == seg_q)) & (seg_q >= 0)
    allowed |= torch.eye(length, dtype=torch.bool, device=segment.device)[None]  # padding: itself only (no NaN)
    return allowed[:, None]


class PrefixBlockMask(torch.Tensor):
    """The block mask of packed rows as a [U, 1, L, L] bool tensor without its L x L data, which
    `scaled_dot_product_attention` computes block by block.

    Why a tensor subclass: transformers hands the mask unchanged to `torch.nn.functional.
    scaled_dot_product_attention` (its sdpa integration), and the mask travels as a keyword argument through
    gradient checkpointing (also its recomputation in the backward pass), DeepSpeed and PEFT. Intercepting that
    one call (`__torch_function__`) needs no change to the model or to transformers' attention registry. The
    tensor itself is one stored `True` broadcast to the mask's shape (shape, dtype and device are right, the
    values are not): reading its metadata is free, and any other operation gets the dense mask, built from the
    segment ids on first use (`block_mask`), which gives the same result, only slower.
    """

    rows: list[RowLayout]  # (not `layout`: a tensor attribute of that name exists)
    segment: torch.Tensor  # [U, L] segment ids, from which the dense mask is built on demand

    @staticmethod
    def wrap(segment: torch.Tensor, rows: Sequence[RowLayout]) -> "PrefixBlockMask":
        u, length = segment.shape
        placeholder = torch.ones((), dtype=torch.bool, device=segment.device).expand(u, 1, length, length)
        mask = placeholder.as_subclass(PrefixBlockMask)
        mask.rows, mask.segment = list(rows), segment
        return mask

    def dense(self) -> torch.Tensor:
        """The dense mask this tensor stands for, built once."""
        cached = self.__dict__.get("_dense")
        if cached is None:
            cached = self.__dict__["_dense"] = block_mask(self.segment)
        return cached

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.scaled_dot_product_attention:
            blocked = _block_sdpa(*args, **kwargs)
            if blocked is not None:
                return blocked
        if func in _METADATA:  # shape, dtype, device: the placeholder has the mask's
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs)
        args, kwargs = _densify(args), {k: _densify(v) for k, v in kwargs.items()}
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **kwargs)


# Tensor methods and properties that read only metadata, which the placeholder of a PrefixBlockMask has right.
_METADATA = frozenset({
    torch.Tensor.shape.__get__, torch.Tensor.dtype.__get__, torch.Tensor.device.__get__, torch.Tensor.ndim.__get__,
    torch.Tensor.is_cuda.__get__, torch.Tensor.requires_grad.__get__, torch.Tensor.layout.__get__,
    torch.Tensor.dim, torch.Tensor.size, torch.Tensor.is_floating_point, torch.Tensor.__len__,
})


def _densify(value: Any) -> Any:
    """`value` with every PrefixBlockMask in it (also inside tuples and lists) replaced by its dense mask."""
    if isinstance(value, PrefixBlockMask):
        return value.dense()
    if isinstance(value, (tuple, list)):
        return type(value)(_densify(v) for v in value)
    return value


def _block_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """sdpa of packed rows [U, H, L, D] under a PrefixBlockMask, block by block; None if the call is not one."""
    mask = attn_mask
    if not isinstance(mask, PrefixBlockMask) or is_causal or enable_gqa or query.ndim != 4 \
            or not query.shape[:3] == key.shape[:3] == value.shape[:3] or len(getattr(mask, "rows", ())) != len(query):
        return None
    with torch._C.DisableTorchFunctionSubclass():
        return torch.stack([_block_row(query[u], key[u], value[u], row, dropout_p, scale)
                            for u, row in enumerate(mask.rows)])


def _block_row(q, k, v, row: RowLayout, dropout_p: float, scale) -> torch.Tensor:
    """One packed row [H, L, D]: the prompt causally, each completion against the prompt and itself."""
    sdpa = torch.nn.functional.scaled_dot_product_attention
    h = row.prefix
    pieces = [sdpa(q[None, :, :h], k[None, :, :h], v[None, :, :h], dropout_p=dropout_p, is_causal=True,
                   scale=scale)[0]]
    for offset, c in row.segments:
        keys = torch.cat([k[:, :h], k[:, offset:offset + c]], dim=1)[None]
        values = torch.cat([v[:, :h], v[:, offset:offset + c]], dim=1)[None]
        allowed = torch.ones(c, h + c, dtype=torch.bool, device=q.device)
        allowed[:, h:] = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
        pieces.append(sdpa(q[None, :, offset:offset + c], keys, values, attn_mask=allowed, dropout_p=dropout_p,
                           scale=scale)[0])
    pieces.append(v[:, row.length:])  # padding attends to itself only: its own value
    return torch.cat(pieces, dim=1)


def mask_mapping(packed: PackedBatch, text_config, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The `attention_mask` the text model takes as already prepared: one 4D mask per layer type (sdpa: a
    `PrefixBlockMask`, no dense mask is built)."""
    impl = getattr(text_config, "_attn_implementation", None)
    if impl == "eager":  # eager adds the mask to the scores
        allowed = packed.allowed
        mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
        mask = mask.masked_fill(~allowed, torch.finfo(dtype).min)
    else:
        mask = PrefixBlockMask.wrap(packed.segment, packed.layout)
    return {layer_type: mask for layer_type in set(getattr(text_config, "layer_types", None) or ["full_attention"])}


def unpack(values: torch.Tensor, packed: PackedBatch) -> torch.Tensor:
    """Per-position values of the packed rows [U, L] -> [N, C] in the plain layout (0 outside the mask)."""
    gathered = values.reshape(-1)[packed.source]
    return torch.where(packed.valid, gathered, torch.zeros_like(gathered))


def unsupported_reason(text_config) -> Optional[str]:
    """Why a model's text stack cannot take the packed layout, or None."""
    impl = getattr(text_config, "_attn_implementation", None)
    if impl not in MASK_KERNELS:
        return f"attention implementation {impl!r} cannot take a custom 4D mask (sdpa or eager can)"
    layer_types = getattr(text_config, "layer_types", None) or []
    if "sliding_attention" in layer_types:
        return "sliding-window attention layers"
    if "linear_attention" in layer_types:  # Qwen3.5's Gated DeltaNet: a recurrent state runs through every token
        return "linear-attention (Gated DeltaNet) layers carry a recurrent state that a block mask cannot split"
    return None


def rope_index_module(model: torch.nn.Module) -> torch.nn.Module:
    """The submodule that owns `get_rope_index` (the VL base model), through DeepSpeed/PEFT wrappers."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module  # DeepSpeed engine, DDP
    for module in model.modules():
        if callable(getattr(module, "get_rope_index", None)):
            return module
    raise TypeError(f"{type(model).__name__} has no get_rope_index (not a Qwen VL model)")


def plain_positions(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
    video_fields: dict[str, Any],
) -> torch.Tensor:
    """[3, N, W] M-RoPE positions of the plain rows, as the model's forward computes them: its own get_rope_index with
    the fields its processor made (Qwen2.5-VL's `second_per_grid_ts`; Qwen3-VL / Qwen3.5 split each video into
    one grid per frame group themselves, between the text timestamps)."""
    owner = rope_index_module(model)
    timing = {k: video_fields[k] for k in ("second_per_grid_ts",) if video_fields.get(k) is not None}
    with torch.no_grad():
        positions, _ = owner.get_rope_index(
            input_ids,
            mm_token_type_ids=mm_token_type_ids,
            image_grid_thw=None,
            video_grid_thw=video_fields.get("video_grid_thw"),
            attention_mask=attention_mask,
            **timing,
        )
    return positions


def prepare(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    keys: Sequence[Hashable],
    video_fields: Callable[[Sequence[int]], dict[str, torch.Tensor]],
    mm_token_type_ids: torch.Tensor,
    pad_token_id: int,
) -> Union[tuple[dict[str, Any], PackedBatch], str]:
    """(the packed forward's keyword arguments, the packing) for TRL-layout rows, or why they cannot be packed.

    `keys[i]` identifies row i's prompt and video; `video_fields(rows)` gives those rows' concatenated video
    tensors (`pixel_values_videos`, `video_grid_thw`, `second_per_grid_ts`). The caller adds the head: TRL's
    fused log-prob head with `shift_labels=packed.shift_labels`, or the hidden states and its own.
    """
    owner = rope_index_module(model)
    text_config = owner.config.get_text_config()
    reason = unsupported_reason(text_config)
    if reason is not None:
        return reason
    groups = plan_groups(input_ids, attention_mask, logits_to_keep, keys)
    if isinstance(groups, str):
        return groups
    if bool((mm_token_type_ids[:, input_ids.shape[1] - logits_to_keep:] * attention_mask[:, -logits_to_keep:]).any()):
        return "a completion holds vision placeholder tokens"
    reps = representatives(groups)
    fields = video_fields(reps)  # one row per prompt: grids for the positions, pixels for the forward
    positions = plain_positions(owner, input_ids[reps], attention_mask[reps], mm_token_type_ids[reps], fields)
    packed = pack(groups, input_ids, positions, logits_to_keep, pad_token_id)
    # positions are given: the forward needs only the pixels and grids
    fields = {k: v for k, v in fields.items() if k != "second_per_grid_ts"}
    dtype = next(owner.parameters()).dtype
    # One 4D mask serves every layer (layer types that would need another are refused above); a 4D mask passes
    # every family's mask creation unchanged, while a per-layer-type mapping is not taken by Qwen3-VL's text model.
    mask = next(iter(mask_mapping(packed, text_config, dtype).values()))
    inputs = {"input_ids": packed.input_ids, "position_ids": packed.position_ids, "attention_mask": mask, **fields}
    return inputs, packed
