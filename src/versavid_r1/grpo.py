"""Training entry: `python -m versavid_r1.grpo --config configs/X.yaml [--flag value ...]`.

`TrlParser` over three option groups: `ScriptArguments` (versavid_r1.trainer.args: data, video frames and
pixels, judges, reward composition), TRL's `GRPOConfig` (optimisation, generation, logging, checkpoints)
and TRL's `ModelConfig` (model path, dtype, attention, LoRA). Any YAML key can be overridden by a flag.

Order of work (nothing expensive happens before the cheap checks pass):
1. option checks (`versavid_r1.training_options`, `preflight.check_launch`), 2. data validation (every row,
all problems listed), 3. judge health for the problem types present (message names the missing service and
how to start it; the run's key accepted; the rows within the limits each judge reports),
4. model, processor, trainer, 5. train (optionally resuming), 6. save and print where everything is.

Output folder: one run at a time (a lock held by the main process); a run from step 0 on a folder that holds
an earlier run is refused unless `--overwrite_output_dir true` (which removes what that run wrote;
`versavid_r1.trainer.fresh_start`). A resumed checkpoint is checked whole first (`checkpoint_parts`).
Ctrl-C / SIGTERM end the run with "interrupted at step N" and exit status 130 / 143, within seconds.

Multi-process: launch with `torchrun --nproc_per_node N -m versavid_r1.grpo ...` (add `--nnodes`,
`--node_rank`, `--master_addr`, `--master_port` for several nodes) and `--deepspeed configs/deepspeed/zero3.json`
on GPUs. `--resume_from_checkpoint true` continues from the newest complete checkpoint in output_dir
(`auto`: the newest if there is one, else from scratch; or a checkpoint path); every weight is restored or
the run stops naming the keys (`versavid_r1.trainer.checkpoints`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from versavid_r1.run_record import RUN_INFO_FILE, training_record

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
    """HF semantics for `--resume_from_checkpoint`: true/latest = newest COMPLETE checkpoint in output_dir
    (error if none), auto = that if any else a fresh start, a path = that checkpoint, false/empty = fresh
    start. A checkpoint whose save did not finish (no completion marker: killed, disk full) is never picked."""
    from versavid_r1.trainer.checkpoints import incomplete, is_complete, latest_complete

    if value is None or isinstance(value, bool):
        word = "true" if value else ""
    else:
        word = str(value).strip()
    low = word.lower()
    if low in FALSE_WORDS:
        return None
    if low in TRUE_WORDS or low in AUTO_WORDS:
        last = latest_complete(output_dir)
        skipped = [os.path.basename(d) for d in incomplete(output_dir)
                   if last is None or _step(d) > _step(last)]
        if skipped:
            log.warning("ignoring incomplete checkpoint(s) %s in %s (their save did not finish)",
                        ", ".join(skipped), output_dir)
        if last is None and low not in AUTO_WORDS:
            also = f" (incomplete, not usable: {', '.join(skipped)})" if skipped else ""
            raise FileNotFoundError(
                f"--resume_from_checkpoint {word}: no complete checkpoint-* folder in {output_dir}{also}; pass a "
                "checkpoint path, or 'auto' to start fresh when there is none"
            )
        return last
    if not os.path.isdir(word):
        raise FileNotFoundError(f"--resume_from_checkpoint {word}: no such checkpoint folder")
    if not is_complete(word):
        log.warning("%s has no completion marker: its save may not have finished; loading it anyway because "
                    "it was named explicitly", word)
    return word


def _step(folder: str) -> int:
    return int(os.path.basename(folder).rsplit("-", 1)[-1])


def _setup_logging(training_args) -> None:
    import transformers

    level = logging.INFO if training_args.process_index == 0 else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout, force=True
    )
    transformers.utils.logging.set_verbosity_warning()  # the project's own INFO lines, not every config dump
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per judge request otherwise


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
            with _no_shm_comm_op():
                deepspeed.init_distributed("gloo", auto_mpi_discovery=False)


@contextlib.contextmanager
def _no_shm_comm_op():
    """DeepSpeed's CPU backend JIT-compiles its shared-memory communication op when it starts (about 140
    CPU-seconds of C++ on the first run on each machine, again whenever another torch install used the
    torch-extensions cache). The op serves only `inference_all_reduce` (DeepSpeed-Inference tensor
    parallelism), never ZeRO training, so training starts without it (`inference_all_reduce` would fall
    back to torch.distributed)."""
    import importlib

    ds_torch = importlib.import_module("deepspeed.comm.torch")  # `deepspeed.comm.torch` the attribute is torch
    build, ds_torch.build_shm_op = ds_torch.build_shm_op, lambda: None
    try:
        yield
    finally:
        ds_torch.build_shm_op = build


def build_trainer(script_args, training_args, model_args, rows=None, eval_rows=None):
    """Everything up to a ready `Qwen25VLGRPOTrainer` (the checks of steps 1-3 included)."""
    from trl import get_peft_config, get_quantization_config

    from versavid_r1.data import make_conversation
    from versavid_r1.modeling import freeze_vision_tower, load_processor, load_vl_model, lora_targets_for, vision_patch_size
    from versavid_r1.rewards import JudgeClient, make_versavid_reward
    from versavid_r1.trainer import Qwen25VLGRPOTrainer, preflight
    from versavid_r1.trainer.rows import rows_to_dataset

    preflight.check_launch(training_args)
    if script_args.image_patch_size is None:  # frames sized for the model's patch (Qwen3-VL, Qwen3.5: 16)
        script_args.image_patch_size = vision_patch_size(model_args.model_name_or_path)
    video_config = script_args.video_config()
    policy_prompt = script_args.policy_prompt_config()

    # 2. data
    checks = dict(limits=script_args.row_limits(), decode=script_args.validate_decode)
    mixture = None
    if rows is None:
        rows, mixture = preflight.load_training_data(script_args, training_args, video_config, **checks)
    if eval_rows is None and script_args.eval_data_path and training_args.eval_strategy != "no":
        eval_rows = preflight.load_training_rows(
            script_args.eval_data_path, video_config, script_args.skip_invalid, what="evaluation", **checks
        )

    preflight.check_dataset_size(rows, training_args)
    if script_args.heldout_path:  # a bad held-out file stops the run now, not after training
        from versavid_r1.heldout_eval import HeldoutError, load_heldout_items

        try:
            load_heldout_items(script_args.heldout_path, script_args)
        except HeldoutError as err:
            raise preflight.PreflightError(str(err)) from None

    # 3. judges: the client (its options checked), each needed service ready and accepting the key, the rows
    # within the limits the services report
    reward_cfg = script_args.reward_config()
    client = JudgeClient.from_config(reward_cfg)
    client.headers.update(script_args.judge_headers() or {})  # bearer token when the judges require one
    for judge, limits in script_args.judge_limits().items():
        client.set_limits(judge, limits)
    if script_args.check_judges:
        judged = list(rows) + list(eval_rows or [])
        needed = preflight.judges_needed(judged, script_args.qwen_judge_url, script_args.caption_judge_url)
        reported = preflight.check_judges(needed, ready_timeout=script_args.judge_ready_timeout,
                                          auth_headers=dict(client.headers))
        for judge, limits in reported.items():
            client.set_limits(judge, limits)
        if reported:
            preflight.check_rows_for_judges(judged, dataclasses.replace(checks["limits"], services=reported))

    # 4. model, processor, reward, trainer
    model_path = model_args.model_name_or_path
    if not model_path:
        raise ValueError("no model: pass --model_name_or_path (a local Qwen2.5-VL / Qwen2-VL directory or hub id)")
    if os.path.isdir(model_path):  # an absolute path in saved adapters and run records: usable from any folder
        model_path = model_args.model_name_or_path = os.path.abspath(model_path)
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
    if script_args.freeze_vision_tower:
        log.info("vision tower frozen (%d parameters)", freeze_vision_tower(model))
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

    if model_args.use_peft and not model_args.lora_target_modules and not model_args.lora_target_parameters:
        model_args.lora_target_modules = lora_targets_for(model.config)
        log.info("use_peft without lora_target_modules: LoRA on %s", model_args.lora_target_modules)
    client.decoys.add_rows(rows)  # decoys for the judges' decoy check come from the training rows' truths
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
        conversation_builder=functools.partial(make_conversation, cfg=video_config, prompt=policy_prompt),
        max_prompt_length=script_args.max_prompt_length,
        share_prompt_prefill=script_args.share_prompt_prefill,
        max_skipped_rows=script_args.max_skipped_rows,
        share_prompt_loss=script_args.share_prompt_loss,
        prefetch_videos=script_args.prefetch_videos,
    )
    trainer._versavid_run_info = training_record(
        script_args, training_args, model_args,
        video_config=video_config.to_dict(), reward_config=reward_cfg.to_dict(), policy_prompt=policy_prompt,
        model=model_path, attn_implementation=model.config._attn_implementation, rows=len(rows),
        data_mixture=mixture, world_size=training_args.world_size,
    )
    return trainer


def run(script_args, training_args, model_args) -> "object":
    """Steps 1-6 (see the module docstring); returns the trainer after training."""
    from versavid_r1.training_options import check_options
    from versavid_r1.trainer.preflight import PreflightError
    from versavid_r1.trainer.run_guard import OutputDirLock

    try:
        check_options(script_args, training_args, model_args)
    except ValueError as err:
        raise PreflightError(str(err)) from None
    _init_cpu_deepspeed(training_args)
    _setup_logging(training_args)
    main_process = training_args.process_index == 0
    with OutputDirLock(training_args.output_dir) if main_process else contextlib.nullcontext():
        return _run(script_args, training_args, model_args, main_process)


def _run(script_args, training_args, model_args, main_process: bool) -> "object":
    from versavid_r1.trainer.checkpoint_parts import check_resumable
    from versavid_r1.trainer.fresh_start import plan_fresh_start
    from versavid_r1.trainer.run_guard import Interrupted, OutputDirError, signals_interrupt

    started = time.time()
    try:
        resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    except FileNotFoundError as err:  # one line for the user, not a traceback
        raise OutputDirError(str(err)) from None
    auto = str(training_args.resume_from_checkpoint).strip().lower() in AUTO_WORDS
    plan = plan_fresh_start(training_args.output_dir, resume, script_args.overwrite_output_dir, auto=auto)
    if resume:  # every part the resume restores is there, before anything loads
        note = check_resumable(resume, world_size=training_args.world_size, deepspeed=bool(training_args.deepspeed),
                               peft=bool(model_args.use_peft), weights_only=script_args.resume_weights_only)
        if note:
            log.warning(note)
    trainer = build_trainer(script_args, training_args, model_args)
    if main_process:
        for line in plan.apply():
            log.warning(line)
    if trainer.accelerator.is_main_process:
        os.makedirs(training_args.output_dir, exist_ok=True)
        with open(os.path.join(training_args.output_dir, RUN_INFO_FILE), "w") as f:
            json.dump(trainer._versavid_run_info, f, indent=2)
    log.info("world size %d, output_dir %s", training_args.world_size, training_args.output_dir)
    if resume:
        log.info("resuming from %s", resume)
    if script_args.compact_log:
        from versavid_r1.trainer.progress import use_compact_logging

        use_compact_logging(trainer)
    try:
        with signals_interrupt():
            trainer.train(resume_from_checkpoint=resume)
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: report the step reached, not a failure
        import signal

        raise Interrupted(getattr(stop, "signum", signal.SIGINT), trainer.state.global_step) from None
    trainer.save_model(training_args.output_dir)
    trainer.save_state()  # output_dir/trainer_state.json: the whole log history, read by versavid_r1.plot
    if trainer.accelerator.is_main_process:
        from versavid_r1.run_summary import closing_summary

        out = Path(training_args.output_dir).resolve()
        print(closing_summary(trainer, out, time.time() - started, training_args.log_completions), flush=True)
        if script_args.heldout_path:
            from versavid_r1.heldout_eval import evaluate_trained_run

            evaluate_trained_run(script_args, training_args, model_args, out)
        _report_rewards(out)
    return trainer


def _report_rewards(out: Path) -> None:
    """The reward table and curve of the finished run (versavid_r1.plot); a failure here is logged, the
    trained model is already saved."""
    from versavid_r1.plot import report

    try:
        png, table = report(out)
    except Exception as err:  # noqa: BLE001 - a missing picture must not turn a finished run into a failure
        log.warning("no reward curve: %s: %s (python -m versavid_r1.plot %s)", type(err).__name__, err, out)
        return
    print(f"\n{table}\n  reward curve: {png}", flush=True)


def main(argv: Optional[Sequence[str]] = None, exit_fast: bool = False) -> None:
    """The command line. `exit_fast` (the `python -m` entry): after an interruption, end the process at once
    (`run_guard.exit_now`) instead of raising SystemExit, so a signal ends the run within seconds."""
    parser = make_parser()
    from versavid_r1.data import DataValidationError
    from versavid_r1.trainer.checkpoint_parts import IncompleteCheckpoint
    from versavid_r1.trainer.checkpoints import CheckpointError
    from versavid_r1.training_options import check_options
    from versavid_r1.trainer.preflight import exit_on_preflight_error
    from versavid_r1.trainer.run_guard import Interrupted, OutputDirError, exit_now

    try:  # a bad flag, YAML key or value: one line, exit 2, before anything loads
        script_args, training_args, model_args = parser.parse_args_and_config(args=argv)
        check_options(script_args, training_args, model_args)
    except ValueError as err:
        print(f"ERROR: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    try:
        # one clear message and exit 2 for the errors users can fix (bad rows are listed, no traceback)
        with exit_on_preflight_error(OutputDirError, IncompleteCheckpoint, DataValidationError):
            run(script_args, training_args, model_args)
    except KeyboardInterrupt as stop:  # Ctrl-C / SIGTERM: an interruption, reported once, exit 128+signal
        if training_args.process_index == 0:
            print(interrupted_message(stop, training_args.output_dir), file=sys.stderr, flush=True)
        code = stop.exit_code if isinstance(stop, Interrupted) else 130
        if exit_fast:
            exit_now(code)
        raise SystemExit(code) from None
    except CheckpointError as err:
        print(f"\nERROR: {err}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def interrupted_message(stop: KeyboardInterrupt, output_dir: str) -> str:
    """The line printed on Ctrl-C: where training stopped and the command that continues it."""
    from versavid_r1.trainer.checkpoints import checkpoint_dirs, latest_complete

    step = getattr(stop, "step", None)
    where = f"interrupted at step {step}" if step is not None else "interrupted before training started"
    last = latest_complete(output_dir)
    if last is None:
        again = " plus --overwrite_output_dir true" if checkpoint_dirs(output_dir) else ""
        return f"\n{where}; no complete checkpoint in {output_dir}: rerun the same command{again} to start again"
    return (f"\n{where}; last complete checkpoint: {last}. Resume with the same command plus "
            "--resume_from_checkpoint true")


if __name__ == "__main__":
    main(exit_fast=True)
