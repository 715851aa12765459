"""Evaluation of a checkpoint on the paper's benchmark formats, with the training rewards and judges.

    python -m versavid_r1.eval --config configs/eval/mcqa.yaml --model PATH [--output DIR]

    from versavid_r1.eval import parse_eval_args, run_eval
    summary = run_eval(parse_eval_args(["--config", "configs/eval/mcqa.yaml", "--model", "ckpt"]))

Modules: config (EvalConfig, flags and YAML), formats (benchmark rows -> internal rows, reading a file
without losing a row), models (full checkpoints and LoRA adapters), generation (batched HF generate,
vLLM), scoring (per-sample scores through versavid_r1.rewards and the judge services), report (summary
JSON and markdown), store (kill-safe JSONL record files), runner (the resumable run), converters
(MVBench- and DREAM-1K-style annotation files -> evaluation rows).
"""
from versavid_r1.eval.config import EvalConfig, parse_eval_args
from versavid_r1.eval.formats import EvalItem, RowFormatError, load_eval_items, mcqa_to_internal
from versavid_r1.eval.report import markdown, summarize
from versavid_r1.eval.runner import GENERATIONS_FILE, SAMPLES_FILE, SUMMARY_JSON, SUMMARY_MD, run_eval

__all__ = [
    "EvalConfig",
    "EvalItem",
    "GENERATIONS_FILE",
    "RowFormatError",
    "SAMPLES_FILE",
    "SUMMARY_JSON",
    "SUMMARY_MD",
    "load_eval_items",
    "markdown",
    "mcqa_to_internal",
    "parse_eval_args",
    "run_eval",
    "summarize",
]
