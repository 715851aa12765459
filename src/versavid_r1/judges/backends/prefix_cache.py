"""Prompt-prefix KV cache for the `transformers` judge backend.

Every judge prompt starts with the same system prompt and template text (with the tiny tokenizer, 301
of the ~396 tokens of a DarkEventInfer prompt and 178 of ~260 for MixVidQA). On a CPU that prefill is compute-bound and costs the
same per request batched or not, so it capped micro-batching. This module computes the key/value
states of such a shared prefix once (one forward of the prefix), keeps them in a small LRU, and builds
for each batch a `DynamicCache` whose rows hold their own prefix (rows may have different prefixes:
shorter ones are left-padded and masked). `generate` then runs only on the per-request suffixes.

Why by hand: neither transformers' `generate` nor TRL shares a prompt prefix across requests (a
`past_key_values` passed to `generate` is one caller's cache); vLLM has its own prefix caching, but it
is a separate GPU stack.

How a prefix is found, without knowing the templates: a row with no cached prefix is compared with
the other rows of its batch and with the last prompts seen; the rows (and recent prompts) sharing at
least `min_tokens` leading tokens with it form a group, and the group's longest common token prefix
becomes the cached prefix. So after two prompts of a template, the template's fixed text is cached.
The layout of a batch row is `[pad | prefix | pad | suffix]` with the attention mask zero on the pads;
`generate` derives position ids from the mask's cumulative sum, so suffix positions continue the
prefix's positions exactly as in the uncached prompt.
"""
from __future__ import annotations

import inspect
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

log = logging.getLogger(__name__)

TokenIds = tuple[int, ...]


@dataclass
class PrefixEntry:
    """The key/value states of one prefix: per layer, tensors of shape [1, heads, len, head_dim]."""

    ids: TokenIds
    layers: list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class PrefixBatch:
    """Inputs of one `generate` call that reuses cached prefixes."""

    input_ids: torch.Tensor          # [B, P + S]: the full rows (prefix region, then suffix region)
    attention_mask: torch.Tensor     # [B, P + S]: zeros on both pad regions
    past_key_values: object          # DynamicCache holding the prefix region (length P)
    reused_tokens: int               # prefix tokens not recomputed in this call


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    """Bounded LRU of prefix KV states plus the recent prompts used to discover new prefixes.

    Not thread-safe: the backend uses it from its single generate thread only."""

    def __init__(self, model, min_tokens: int = 64, max_entries: int = 8, history: int = 16):
        self.model = model
        self.min_tokens = max(1, int(min_tokens))
        self.max_entries = max(1, int(max_entries))
        self._entries: "OrderedDict[TokenIds, PrefixEntry]" = OrderedDict()
        self._recent: "deque[TokenIds]" = deque(maxlen=max(1, int(history)))
        self.prefills = 0          # prefix forwards computed (once per cached prefix)
        self.rows_reused = 0       # batch rows that started from a cached prefix
        self.tokens_reused = 0     # prefix tokens those rows did not recompute
        self.plain_batches = 0     # batches with no cached prefix: run by the plain path
        self.disabled_reason: Optional[str] = None
        self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters

    # --- finding prefixes --------------------------------------------------------------------------
    def _lookup(self, ids: TokenIds) -> Optional[PrefixEntry]:
        """The longest cached prefix of `ids` that leaves at least one suffix token."""
        best = None
        for key, entry in self._entries.items():
            if len(key) < len(ids) and (best is None or len(key) > len(best.ids)) and ids[:len(key)] == key:
                best = entry
        if best is not None:
            self._entries.move_to_end(best.ids)
        return best

    def _discover(self, ids: TokenIds, others: Sequence[TokenIds]) -> Optional[TokenIds]:
        """The common prefix of `ids` and the prompts sharing >= min_tokens leading tokens with it."""
        group = [o for o in others if common_prefix_len(ids, o) >= self.min_tokens]
        if not group:
            return None
        n = len(ids) - 1                     # keep at least one token to run through generate
        for o in group:
            n = min(n, common_prefix_len(ids, o))
        return ids[:n] if n >= self.min_tokens else None

    def plan(self, rows: Sequence[TokenIds]) -> list[Optional[PrefixEntry]]:
        """The prefix entry of each row, computing (once) the prefixes that are new."""
        entries = [self._lookup(r) for r in rows]
        for i, r in enumerate(rows):
            if entries[i] is not None:
                continue
            others = [rows[j] for j in range(len(rows)) if j != i and entries[j] is None] + list(self._recent)
            found = self._discover(r, others)
            if found is not None:
                self._store(found)
                entries[i] = self._lookup(r)
                for j in range(i + 1, len(rows)):   # later rows may share the new prefix
                    if entries[j] is None:
                        entries[j] = self._lookup(rows[j])
        self._recent.extend(rows)
        return entries

    # --- computing and storing ---------------------------------------------------------------------
    def _store(self, ids: TokenIds) -> None:
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        cache = DynamicCache(config=self.model.config)
        kwargs = {"logits_to_keep": 1} if self._keeps_logits else {}   # skip the LM head on the prefix
        with torch.inference_mode():
            self.model(input_ids=torch.tensor([ids], dtype=torch.long, device=self.model.device),
                       past_key_values=cache, use_cache=True, **kwargs)
        self.prefills += 1
        if any(type(layer) is not DynamicLayer for layer in cache.layers):
            # sliding-window or other layer kinds keep only part of the states: not reusable here
            self.disabled_reason = "model cache has non-plain layers (sliding window, ...)"
            return
        self._entries[ids] = PrefixEntry(ids, [(layer.keys, layer.values) for layer in cache.layers])
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        log.info("prefix cache: new prefix of %d tokens (%d cached)", len(ids), len(self._entries))

    @property
    def entries(self) -> int:
        return len(self._entries)

    # --- building a batch --------------------------------------------------------------------------
    def build(self, rows: Sequence[TokenIds], pad_id: int) -> Optional[PrefixBatch]:
        """Inputs for one generate call over `rows`, or None when no row has a cached prefix."""
        if self.disabled_reason is not None:
            return None
        entries = self.plan(rows)
        if self.disabled_reason is not None:
            return None
        if all(e is None for e in entries):
            self.plain_batches += 1
            return None
        plen = [len(e.ids) if e is not None else 0 for e in entries]
        width_p, width_s = max(plen), max(len(r) - p for r, p in zip(rows, plen))
        b = len(rows)
        input_ids = torch.full((b, width_p + width_s), pad_id, dtype=torch.long)
        mask = torch.zeros((b, width_p + width_s), dtype=torch.long)
        for i, (r, p) in enumerate(zip(rows, plen)):
            input_ids[i, width_p - p:width_p] = torch.tensor(r[:p], dtype=torch.long)
            mask[i, width_p - p:width_p] = 1
            s = len(r) - p
            input_ids[i, width_p + width_s - s:] = torch.tensor(r[p:], dtype=torch.long)
            mask[i, width_p + width_s - s:] = 1
        cache = self._batch_cache(entries, width_p)
        reused = sum(plen)
        self.rows_reused += sum(1 for p in plen if p)
        self.tokens_reused += reused
        return PrefixBatch(input_ids, mask, cache, reused)

    def _batch_cache(self, entries: Sequence[Optional[PrefixEntry]], width: int):
        """A DynamicCache of `width` positions: row i holds its prefix right-aligned, zeros before it
        (masked). One shared prefix is expanded without a per-row copy."""
        from transformers import DynamicCache

        first = next(e for e in entries if e is not None)
        same = all(e is first for e in entries)
        cache = DynamicCache(config=self.model.config)
        for layer_idx, (k0, v0) in enumerate(first.layers):
            if same:
                k = k0.expand(len(entries), -1, -1, -1)
                v = v0.expand(len(entries), -1, -1, -1)
            else:
                shape = (len(entries), k0.shape[1], width, k0.shape[3])
                k = k0.new_zeros(shape)
                v = v0.new_zeros((len(entries), v0.shape[1], width, v0.shape[3]))
                for i, e in enumerate(entries):
                    if e is not None:
                        ek, ev = e.layers[layer_idx]
                        k[i, :, width - ek.shape[2]:] = ek[0]
                        v[i, :, width - ev.shape[2]:] = ev[0]
            cache.update(k, v, layer_idx)   # the first update copies (torch.cat), the entry stays intact
        return cache

    def stats(self) -> dict:
        return {"prefix_cache_entries": len(self._entries), "prefix_cache_prefills": self.prefills,
                "prefix_cache_rows_reused": self.rows_reused, "prefix_cache_tokens_reused": self.tokens_reused,
                "prefix_cache_plain_batches": self.plain_batches, "prefix_cache_disabled": self.disabled_reason}
