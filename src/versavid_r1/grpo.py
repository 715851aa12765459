"""Training entry: `python -m versavid_r1.grpo --config configs/X.yaml [--flag value ...]`.

`TrlParser` over three option groups: `ScriptArguments` (versavid_r1.trainer.args: data, video frames and
pixels, judges, reward composition), TRL's `GRPOConfig` (optimisation, generation, logging, checkpoints)
and TRL's `ModelConfig` (model path, dtype, attention, LoRA). Any YAML key can be overridden by a flag.

Order of work (nothing expensive happens before the cheap checks pass):
1. option checks (`preflight.check_launch`), 2. data validation (every row, all problems listed),
3. judge health for the problem types present (message names the missing service and how to start it),
4. model, processor, trainer, 5. train (optionally resuming), 6. save and print where everything is.

Multi-process: launch with `torchrun --nproc_per_node N -m versavid_r1.grpo ...` (add `--nnodes`,
`--node_rank`, `--master_addr`, `--master_port` for several nodes) and `--deepspeed configs/deepspeed/zero3.json`
on GPUs. `--resume_from_checkpoint true` continues from the newest checkpoint in output_dir
(`auto`: the newest if there is one, else from scratch; or a checkpoint path).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

log = logging.getLogger("versavid_r1.grpo")

TRUE_WORDS = ("true", "1", "yes", "latest")
AUTO_WORDS = ("auto",)
FALSE_WORDS = ("", "false", "0", "no", "none", "null")


def make_parser():
    from trl import GRPOConfig, ModelConfig, TrlParser

    from versavid_r1.trainer.args import ScriptArguments

    parser = TrlParser((ScriptArguments, GRPOConfig, ModelConfig), prog="python -m versavid_r1.grpo")
    # Project defaults that differ from TRL's (a YAML or a flag still overrides them).
    parser.set_defaults(report_to=["tensorboard"], log_completions=True, num_completions_to_print=2)
    return parser


def resolve_resume(value, output_dir: str) -> Optional[str]:
    """HF semantics for `--resume_from_checkpoint`: true/latest = newest checkpoint in output_dir (error if
    none), auto = newest if any else a fresh start, a path = that checkpoint, false/empty = fresh start."""
    from transformers.trainer_utils import get_last_checkpoint

    if value is None or isinstance(value, bool):
        word = "true" if value else ""
    else:
        word = str(value).strip()
    low = word.lower()
    if low in FALSE_WORDS:
        return None
    if low in TRUE_WORDS or low in AUTO_WORDS:
        last = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
        if last is None and low not in AUTO_WORDS:
            raise FileNotFoundError(
                f"--resume_from_checkpoint {word}: no checkpoint-* folder in {output_dir}; pass a checkpoint path, "
                "or 'auto' to start fresh when there is none"
            )
        return last
    if not os.path.isdir(word):
        raise FileNotFoundError(f"--resume_from_checkpoint {word}: no such checkpoint folder")
    return word


def _setup_logging(training_args) -> None:
    import transformers

    level = logging.INFO if training_args.process_index == 0 else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout, force=True
    )
    transformers.utils.logging.set_verbosity_warning()  # the project's own INFO lines, not every config dump


def _init_cpu_deepspeed(training_args) -> None:
    """DeepSpeed on a machine without CUDA needs its gloo process group before the model is built."""
    import torch

    if training_args.deepspeed and not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        import deepspeed

        if not deepspeed.comm.is_initialized():
            if "MASTER_PORT" not in os.environ:  # a single process without a launcher: any free local port
                import socket

                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", 0))
                    os.environ["MASTER_PORT"] = str(sock.getsockname()[1])
            for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
                os.environ.setdefault(key, value)
            deepspeed.init_distributed("gloo", auto_mpi_discovery=False)


def build_trainer(script_args, training_args, model_args, rows=None, eval_rows=None):
    """Everything up to a ready `Qwen25VLGRPOTrainer` (the checks of steps 1-3 included)."""
    from trl import get_peft_config, get_quantization_config

    from versavid_r1.modeling import load_processor, load_vl_model
    from versavid_r1.rewards import JudgeClient, make_versavid_reward
    from versavid_r1.trainer import Qwen25VLGRPOTrainer, preflight
    from versavid_r1.trainer.rows import rows_to_dataset

    preflight.check_launch(training_args)
    video_config = script_args.video_config()

    # 2. data
    if rows is None:
        rows = preflight.load_training_rows(script_args.data_path, video_config, script_args.skip_invalid)
        if script_args.max_train_samples:
            rows = rows[: script_args.max_train_samples]
    if eval_rows is None and script_args.eval_data_path and training_args.eval_strategy != "no":
        eval_rows = preflight.load_training_rows(
            script_args.eval_data_path, video_config, script_args.skip_invalid, what="evaluation"
        )

    preflight.check_dataset_size(rows, training_args)

    # 3. judges
    if script_args.check_judges:
        needed = preflight.judges_needed(
            list(rows) + list(eval_rows or []), script_args.qwen_judge_url, script_args.caption_judge_url
        )
        preflight.check_judges(needed, ready_timeout=script_args.judge_ready_timeout)

    # 4. model, processor, reward, trainer
    model_path = model_args.model_name_or_path
    if not model_path:
        raise ValueError("no model: pass --model_name_or_path (a local Qwen2.5-VL / Qwen2-VL directory or hub id)")
    load_kwargs = {}
    quantization_config = get_quantization_config(model_args)
    if quantization_config is not None:
        from trl import get_kbit_device_map

        load_kwargs.update(quantization_config=quantization_config, device_map=get_kbit_device_map())
    if model_args.model_revision and model_args.model_revision != "main":
        load_kwargs["revision"] = model_args.model_revision
    model = load_vl_model(
        model_path,
        dtype=model_args.dtype or "auto",
        attn_implementation=model_args.attn_implementation,
        **load_kwargs,
    )
    processor = load_processor(model_path, padding_side="left")
    if script_args.demo_answer_bias:
        if training_args.use_vllm:
            raise preflight.PreflightError("demo_answer_bias works with transformers generation only (use_vllm false)")
        from versavid_r1.trainer.video_inputs import steering_sequence_bias

        log.warning("demo_answer_bias %.1f: generation is steered towards %r (smoke runs with random weights only)",
                    script_args.demo_answer_bias, script_args.demo_answer_text)
        bias = steering_sequence_bias(
            processor, script_args.demo_answer_text, script_args.demo_answer_bias, processor.tokenizer.eos_token_id
        )
        training_args.generation_kwargs = {**(training_args.generation_kwargs or {}), "sequence_bias": bias}

    reward_cfg = script_args.reward_config()
    client = JudgeClient.from_config(reward_cfg)
    client.headers.update(script_args.judge_headers() or {})  # bearer token when the judges require one
    reward = make_versavid_reward(reward_cfg, client)

    trainer = Qwen25VLGRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=training_args,
        train_dataset=rows_to_dataset(rows),
        eval_dataset=rows_to_dataset(eval_rows) if eval_rows else None,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
        video_config=video_config,
        max_prompt_length=script_args.max_prompt_length,
        share_prompt_prefill=script_args.share_prompt_prefill,
        share_prompt_loss=script_args.share_prompt_loss,
        prefetch_videos=script_args.prefetch_videos,
    )
    trainer._versavid_run_info = {
        "script_args": _jsonable(vars(script_args)),
        "video_config": video_config.to_dict(),
        "reward_config": reward_cfg.to_dict(),
        "model": model_path,
        "attn_implementation": model.config._attn_implementation,
        "rows": len(rows),
        "world_size": training_args.world_size,
    }
    return trainer


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))


def run(script_args, training_args, model_args) -> "object":
    """Steps 1-6 (see the module docstring); returns the trainer after training."""
    _init_cpu_deepspeed(training_args)
    _setup_logging(training_args)
    started = time.time()
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    trainer = build_trainer(script_args, training_args, model_args)
    if trainer.accelerator.is_main_process:
        os.makedirs(training_args.output_dir, exist_ok=True)
        with open(os.path.join(training_args.output_dir, "versavid_run.json"), "w") as f:
            json.dump(trainer._versavid_run_info, f, indent=2)
    log.info("world size %d, output_dir %s", training_args.world_size, training_args.output_dir)
    if resume:
        log.info("resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:
        out = Path(training_args.output_dir).resolve()
        logging_dir = getattr(training_args, "logging_dir", None) or str(out / "runs")
        print(
            f"\nTraining done in {time.time() - started:.0f} s ({trainer.state.global_step} steps).\n"
            f"  final model:  {out}\n"
            f"  checkpoints:  {out}/checkpoint-*\n"
            f"  logs:         {logging_dir} (tensorboard --logdir {out})\n"
            f"  completions:  {out}/completions/*.parquet\n"
            f"  run settings: {out}/versavid_run.json",
            flush=True,
        )
    return trainer


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = make_parser()
    script_args, training_args, model_args = parser.parse_args_and_config(args=argv)
    try:
        run(script_args, training_args, model_args)
    except Exception as err:  # one clear line on top of the traceback for the errors users can fix
        from versavid_r1.trainer.preflight import PreflightError

        if isinstance(err, PreflightError):
            print(f"\nERROR: {err}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        raise


if __name__ == "__main__":
    main()
