"""Warm start: `python -m versavid_r1.warm_start --config configs/warm_start_tiny_cpu.yaml [--flag value ...]`.

A short supervised fine-tune before GRPO: each row's GRPO prompt (video included) followed by the target
`<think> THINK </think><answer> GROUND TRUTH </answer>` (`versavid_r1.trainer.sft_data`), with
transformers' `Trainer`. It plays the part that instruction tuning plays for a real base model: a random
tiny model never writes the think/answer format, so GRPO would see no reward at all. The embedded demo of
`run_qwen25vl_train.sh` stops it early on purpose (configs/warm_start_tiny_cpu.yaml): the policy then
writes the format only part of the time and rarely the right answer, and GRPO has to raise the reward
from there. The model and processor are saved to `output_dir`, ready for `versavid_r1.grpo`.

Options: `WarmStartArguments` below (model, data, think text; the video options are the training ones)
and transformers' `TrainingArguments` (steps, learning rate, batch size, seed, ...), from the YAML and flags.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

from versavid_r1 import prompts
from versavid_r1.data.args import VideoArguments

log = logging.getLogger("versavid_r1.warm_start")


@dataclass
class WarmStartArguments(VideoArguments):
    model_name_or_path: Optional[str] = field(default=None, metadata={"help": "Model directory or hub id."})
    data_path: Optional[str] = field(default=None, metadata={"help": "JSONL of the rows to imitate."})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Use only the first N rows."})
    think_text: str = field(default=prompts.WARM_START_THINK,
                            metadata={"help": "The text inside <think> of every target completion."})
    dtype: str = field(default="float32", metadata={"help": "Model dtype: float32, bfloat16, ... or auto."})
    attn_implementation: Optional[str] = field(default="sdpa", metadata={"help": "Attention kernel."})
    freeze_vision_tower: bool = field(
        default=False, metadata={"help": "Train the language model only; the vision encoder keeps its weights."})


def make_parser():
    from transformers import TrainingArguments
    from trl import TrlParser

    return TrlParser((WarmStartArguments, TrainingArguments), prog="python -m versavid_r1.warm_start")


def run(args: WarmStartArguments, training_args) -> str:
    """Fine-tune and save; returns the output directory."""
    from transformers import Trainer

    from versavid_r1.modeling import freeze_vision_tower, load_processor, load_vl_model
    from versavid_r1.trainer.preflight import PreflightError, load_training_rows
    from versavid_r1.trainer.rows import rows_to_dataset
    from versavid_r1.trainer.sft_data import WarmStartCollator

    if not args.model_name_or_path:
        raise PreflightError("no model: pass --model_name_or_path")
    started = time.time()
    video_config = args.video_config()
    rows = load_training_rows(args.data_path, video_config, skip_invalid=False, what="warm-start")
    rows = rows[: args.max_train_samples] if args.max_train_samples else rows
    training_args.remove_unused_columns = False  # the collator reads the JSON `row` column itself
    model = load_vl_model(args.model_name_or_path, dtype=args.dtype, attn_implementation=args.attn_implementation)
    if args.freeze_vision_tower:
        log.info("vision tower frozen (%d parameters)", freeze_vision_tower(model))
    processor = load_processor(args.model_name_or_path)
    trainer = Trainer(model=model, args=training_args, train_dataset=rows_to_dataset(rows),
                      data_collator=WarmStartCollator(processor, video_config, args.think_text),
                      processing_class=processor)
    result = trainer.train()
    trainer.save_model(training_args.output_dir)
    if trainer.is_world_process_zero():
        print(f"Warm start done in {time.time() - started:.0f} s ({result.global_step} steps, final loss "
              f"{result.training_loss:.3f}): {training_args.output_dir}", flush=True)
    return training_args.output_dir


def main(argv: Optional[Sequence[str]] = None) -> None:
    args, training_args = make_parser().parse_args_and_config(args=argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout, force=True)
    from versavid_r1.trainer.preflight import exit_on_preflight_error

    with exit_on_preflight_error():
        run(args, training_args)


if __name__ == "__main__":
    main()
