"""Supervised batches for a warm start: the GRPO prompt of a row (its video included) followed by a target
completion `<think> THINK </think><answer> ANSWER </answer><|im_end|>`.

The prompt is built exactly as the GRPO trainer builds it (`make_conversation`, `load_video` with the proxy
tasks applied, `build_prompt_inputs`), so the warm-started policy is trained on the inputs it will see
during GRPO. The loss covers the completion tokens only (prompt positions are labelled -100, as
transformers' causal-LM loss ignores them). The answer is the row's ground truth (the text inside its
`solution`'s `<answer>`); the think text is one fixed phrase (`prompts.WARM_START_THINK` by default),
because the data carries no reasoning to imitate.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Optional, Sequence

import torch

from versavid_r1.answer import extract_answer

from .rows import decode_rows
from .video_inputs import PromptVideoInputs, build_prompt_inputs, collate_video_fields, mm_token_type_ids, row_key

IGNORE_INDEX = -100  # transformers' causal-LM loss skips these label positions


def target_completion(row: dict, think: str) -> str:
    """The completion the warm start teaches for `row`."""
    answer = extract_answer(row["solution"]) or str(row["solution"]).strip()
    return f"<think> {think} </think><answer> {answer} </answer>"


class WarmStartCollator:
    """`transformers.Trainer` data collator: dataset items (`rows_to_dataset` rows) -> a padded batch with
    `labels` and the video fields (`pixel_values_videos`, `video_grid_thw`, `second_per_grid_ts`,
    `mm_token_type_ids`)."""

    def __init__(self, processor, video_config, think: str,
                 video_loader: Optional[Callable[[dict], Sequence[Any]]] = None,
                 conversation_builder: Optional[Callable[[dict], list]] = None, cache_size: int = 1024):
        from versavid_r1.data import load_video, make_conversation

        self.processor = processor
        self.video_config = video_config
        self.think = think
        self.video_loader = video_loader or (lambda row: [load_video(row, video_config)])
        self.conversation_builder = conversation_builder or (lambda row: make_conversation(row, video_config))
        tok = processor.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.eos = tok.eos_token
        self.video_token_id = tok.convert_tokens_to_ids("<|video_pad|>")
        self.image_token_id = tok.convert_tokens_to_ids("<|image_pad|>")
        # A warm start goes over the same rows epoch after epoch: each row's processor output is kept.
        self._cache: OrderedDict[str, tuple[PromptVideoInputs, list[int]]] = OrderedDict()
        self.cache_size = cache_size

    def example(self, row: dict) -> tuple[PromptVideoInputs, list[int]]:
        """The prompt inputs and the target completion's token ids (EOS included) of one row (cached)."""
        key = row_key(row)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        out = self._example(row)
        if self.cache_size > 0:
            self._cache[key] = out
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    def _example(self, row: dict) -> tuple[PromptVideoInputs, list[int]]:
        prompt = build_prompt_inputs(self.processor, self.conversation_builder(row), self.video_loader(row),
                                     min_pixels=self.video_config.min_pixels,
                                     max_pixels=self.video_config.max_pixels)
        target = self.processor.tokenizer(target_completion(row, self.think) + self.eos,
                                          add_special_tokens=False)["input_ids"]
        return prompt, list(target)

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        examples = [self.example(row) for row in decode_rows(items)]
        width = max(len(p.input_ids) + len(t) for p, t in examples)
        ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, (prompt, target) in enumerate(examples):  # right padding: positions stay 0..n-1 per row
            seq = list(prompt.input_ids) + target
            ids[i, : len(seq)] = torch.tensor(seq)
            labels[i, len(prompt.input_ids): len(seq)] = torch.tensor(target)
            mask[i, : len(seq)] = 1
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels,
                 **collate_video_fields([p for p, _ in examples])}
        if "pixel_values_videos" in batch:
            batch["mm_token_type_ids"] = mm_token_type_ids(ids, self.video_token_id, self.image_token_id)
        return batch
