"""A small byte-level BPE tokenizer with Qwen2's pre-tokenisation and Qwen's special tokens.

Trained in well under a second with `tokenizers` on `corpus.corpus_lines()`, then wrapped as
transformers' `Qwen2Tokenizer` (in transformers 5 the tokenizers-backed class; there is no separate
"Fast" class). The layout copies Qwen2.5's: the BPE vocabulary first (256 byte symbols, then merges),
then the added tokens in Qwen's order, so `<|endoftext|>` is the first id after the BPE vocabulary and
`<|vision_start|>` ... `<|video_pad|>` follow it exactly as in the real tokenizer (only the offsets
differ). Like Qwen2.5-VL-Instruct: eos is `<|im_end|>`, pad is `<|endoftext|>`, no bos, no unk.
`<think>`/`<answer>` are ordinary text, as in the real tokenizer.
"""
from __future__ import annotations

import json

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AddedToken, Qwen2Tokenizer

from .corpus import corpus_lines

# Qwen2.5's added tokens, in id order. The first group is special (skipped when decoding with
# skip_special_tokens=True); the second group is added but not special, as in Qwen2.5.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
    "<|quad_start|>", "<|quad_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
NON_SPECIAL_ADDED_TOKENS: tuple[str, ...] = (
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
    "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
# Qwen2's pre-tokenisation split (the same pattern transformers' Qwen2Tokenizer uses).
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
DEFAULT_BPE_VOCAB_SIZE = 1000


def _bare_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                               fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def train_bpe(vocab_size: int = DEFAULT_BPE_VOCAB_SIZE) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train the byte-level BPE on the embedded corpus; returns (vocab, merges).

    The vocabulary always holds the 256 byte symbols, so any text encodes; `vocab_size` is an upper
    bound (the small corpus may run out of pairs first).
    """
    if vocab_size < 256:
        raise ValueError(f"bpe vocab_size must be >= 256 (the byte alphabet), got {vocab_size}")
    tok = _bare_bpe()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    vocab = tok.get_vocab(with_added_tokens=False)
    # `tokenizers` exposes the merges only through the serialised model.
    state = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return vocab, merges


def build_tokenizer(bpe_vocab_size: int = DEFAULT_BPE_VOCAB_SIZE, model_max_length: int = 32768) -> Qwen2Tokenizer:
    """A `Qwen2Tokenizer` with the trained BPE and Qwen's added tokens (ids right after the BPE)."""
    vocab, merges = train_bpe(bpe_vocab_size)
    tok = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=None,
        pad_token=None,
        model_max_length=model_max_length,
        errors="replace",
        clean_up_tokenization_spaces=False,
    )
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS], special_tokens=True)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in NON_SPECIAL_ADDED_TOKENS])
    tok.add_special_tokens({
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "additional_special_tokens": list(SPECIAL_TOKENS[1:]),
    })
    base = len(vocab)
    for offset, t in enumerate(SPECIAL_TOKENS + NON_SPECIAL_ADDED_TOKENS):
        got = tok.convert_tokens_to_ids(t)
        if got != base + offset:  # the layout is a promise of this module; fail loudly if it breaks
            raise RuntimeError(f"tiny tokenizer: {t} got id {got}, expected {base + offset}")
    return tok


def token_ids(tok) -> dict[str, int]:
    """The ids a model config must agree with."""
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    return {
        "bos_token_id": ids["<|endoftext|>"],  # Qwen configs name <|endoftext|> as bos
        "pad_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "endoftext_id": ids["<|endoftext|>"],
        "im_start_id": ids["<|im_start|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_pad_id": ids["<|vision_pad|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
    }
