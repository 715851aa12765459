"""Domains of the training options (TRL's GRPOConfig and ModelConfig, the project's ScriptArguments), checked
before anything loads (`check_options`; `versavid_r1.options` says why and how). Imports nothing heavy: the
launcher's flag check (`versavid_r1.flag_check`) reads the same tables before torch is imported.

TRL and transformers check some combinations themselves, not these ranges: a negative KL coefficient or clip
range trained, zero iterations saved the untrained model as the final one, a zero learning-rate schedule
length divided by zero only at the first step.
"""
from __future__ import annotations

from versavid_r1.options import Bound, at_least, check_bounds, positive, share

GRPO_BOUNDS = (
    at_least("beta", 0),
    positive("epsilon"),
    positive("epsilon_high", optional=True),
    positive("delta", optional=True),
    at_least("num_iterations", 1),
    at_least("num_generations", 2),
    at_least("num_generations_eval", 1, optional=True),
    at_least("max_completion_length", 1),
    at_least("steps_per_generation", 1, optional=True),
    at_least("generation_batch_size", 1, optional=True),
    positive("temperature"),
    Bound("top_p", low=0, high=1, low_open=True),
    at_least("top_k", 0, optional=True),
    share("min_p", optional=True),
    positive("repetition_penalty"),
    share("top_entropy_quantile"),
    at_least("learning_rate", 0),
    at_least("weight_decay", 0),
    at_least("max_grad_norm", 0),
    share("warmup_ratio", optional=True),
    at_least("warmup_steps", 0),
    Bound("max_steps", low=1, also=(-1,)),
    positive("num_train_epochs"),
    at_least("per_device_train_batch_size", 1),
    at_least("per_device_eval_batch_size", 1),
    at_least("gradient_accumulation_steps", 1),
    positive("logging_steps"),
    positive("save_steps"),
    positive("eval_steps", optional=True),
    at_least("save_total_limit", 1, optional=True),
    Bound("vllm_gpu_memory_utilization", low=0, high=1, low_open=True),
    at_least("vllm_tensor_parallel_size", 1),
    at_least("vllm_max_model_length", 1, optional=True),
    at_least("num_completions_to_print", 0, optional=True),
)
MODEL_BOUNDS = (
    at_least("lora_r", 1),
    positive("lora_alpha"),
    Bound("lora_dropout", low=0, high=1, high_open=True),
)
SCRIPT_BOUNDS = (
    at_least("max_prompt_length", 1, optional=True),
    at_least("max_train_samples", 1, optional=True),
    at_least("mixture_size", 1, optional=True),
    at_least("max_skipped_rows", 0),
    positive("video_read_timeout_s"),
    positive("judge_timeout"),
    at_least("judge_retries", 0),
    at_least("judge_concurrency", 1),
    at_least("judge_batch_size", 1),
    at_least("judge_cache_size", 0),
    share("judge_max_unparseable_rate"),
    at_least("judge_max_field_chars", 1),
    at_least("judge_max_body_bytes", 1),
    at_least("judge_max_input_tokens", 1),
    at_least("judge_ready_timeout", 0),
    Bound("demo_answer_bias"),
)


def check_options(script_args, training_args, model_args) -> None:
    """Raise ValueError naming the first training option outside its domain (see the module docstring)."""
    check_bounds(script_args, SCRIPT_BOUNDS)
    check_bounds(training_args, GRPO_BOUNDS)
    if getattr(model_args, "use_peft", False):
        check_bounds(model_args, MODEL_BOUNDS)
