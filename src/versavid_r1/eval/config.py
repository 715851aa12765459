"""`EvalConfig`: everything an evaluation run can be configured with, as a YAML file plus flag overrides.

`python -m versavid_r1.eval --config configs/eval/mcqa.yaml --model PATH [--output DIR] [--flag value ...]`
is parsed by TRL's `TrlParser` (the same mechanism as training): YAML keys become the defaults, flags
override them, an unknown YAML key is an error. The defaults are the paper's inference settings (docs/method.md,
Evaluation): QA at 1 fps up to 128 frames, greedy decoding, up to 2048 new tokens, the think/answer prompt.
Captioning configs set `nframes: 16` and `video_fps: null`.

The video options (video_root, nframes, video_fps, min/max_frames, pixels, segment_seconds, video_seed,
video_cache_size, video_backend) and `video_config()` are inherited from `versavid_r1.data.args.VideoArguments`,
as in training, so a training YAML's video section can be copied into an eval YAML unchanged; only the
defaults of video_fps (1.0), max_frames (128) and video_cache_size (0) differ. Other names follow the training
options where they mean the same thing (qwen_judge_url, format_mode, ...).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from versavid_r1.data.args import VideoArguments
from versavid_r1.options import Bound, at_least, check_bounds, positive
from versavid_r1.protocol import DEFAULT_CAPTION_JUDGE_PORT, DEFAULT_MAX_FIELD_CHARS, DEFAULT_QWEN_JUDGE_PORT
from versavid_r1.rewards.format import FORMAT_MODES

PROMPT_MODES: tuple[str, ...] = ("think", "direct")
BACKENDS: tuple[str, ...] = ("hf", "vllm")
DATA_FORMATS: tuple[str, ...] = ("auto", "internal", "mcqa")

# Fields whose value changes what is generated or how it is scored: an output folder holds the results of
# one combination of them (see `fingerprint`); the rest (batch size, judge URLs, limits) may change freely
# between a run and its resumption.
RESULT_FIELDS: tuple[str, ...] = (
    "model", "base_model", "data_path", "data_format", "video_root", "prompt_mode", "policy_prompt",
    "prompt_instruction", "mcqa_suffix",
    "nframes", "video_fps", "min_frames", "max_frames", "min_pixels", "max_pixels", "total_pixels",
    "segment_seconds", "video_seed", "video_time_encoding", "backend", "max_new_tokens", "do_sample", "temperature", "top_p", "seed",
    "dtype", "format_mode", "answer_fallback", "bench_judge_model", "bench_prompt_file",
)


# Domains of the numeric options (versavid_r1.options).
EVAL_BOUNDS = (positive("judge_timeout"), at_least("judge_retries", 0), at_least("judge_max_field_chars", 1),
               positive("temperature"), Bound("top_p", low=0, high=1, low_open=True),
               Bound("vllm_gpu_memory_utilization", low=0, high=1, low_open=True),
               at_least("vllm_max_model_len", 1, optional=True))


class EvalSetupError(ValueError):
    """A run cannot start as configured; the message says what to change."""


@dataclass
class EvalConfig(VideoArguments):
    # --- what to evaluate -------------------------------------------------------------------------------
    model: Optional[str] = field(
        default=None,
        metadata={"help": "Checkpoint to evaluate: a model directory (base model or training checkpoint) or a "
                          "LoRA adapter directory (recognised by its adapter_config.json)."},
    )
    base_model: Optional[str] = field(
        default=None,
        metadata={"help": "Base model of a LoRA adapter (default: the adapter's base_model_name_or_path)."},
    )
    processor_path: Optional[str] = field(
        default=None,
        metadata={"help": "Processor/tokenizer directory (default: the model directory if it has one, else the "
                          "adapter's base model)."},
    )
    task_name: str = field(default="eval", metadata={"help": "Name of the benchmark, shown in the summary."})
    data_path: Optional[str] = field(default=None, metadata={"help": "Evaluation JSONL (one row per line)."})
    data_format: str = field(
        default="auto",
        metadata={"help": "Row format: 'mcqa' (video, question, options, answer letter, optional category, id), "
                          "'internal' (the training row schema), or 'auto' (decided per row)."},
    )
    output_dir: str = field(
        default="outputs/eval",
        metadata={"help": "Folder of the per-sample JSONL and the summary; a rerun resumes in it.",
                  "aliases": ["--output"]},
    )
    max_samples: Optional[int] = field(
        default=None,
        metadata={"help": "Evaluate only the first N rows of the data file (a later run without it continues).",
                  "aliases": ["--limit"]},
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "Delete earlier results in output_dir instead of resuming (needed when the model, data "
                          "or a generation/scoring setting changed)."},
    )
    # --- prompt -----------------------------------------------------------------------------------------
    prompt_mode: str = field(
        default="think",
        metadata={"help": "'think': the <think>/<answer> instruction of training; 'direct': answer only, inside "
                          "<answer> tags."},
    )
    # --- video: versavid_r1.data.args.VideoArguments; only the paper's QA inference defaults differ ----------
    video_fps: Optional[float] = field(
        default=1.0,
        metadata={"help": "Frames per second to sample (wins over nframes). Paper QA: 1 fps. 0 or null: use "
                          "nframes."},
    )
    max_frames: int = field(default=128, metadata={"help": "Most frames in fps mode. Paper QA: 128."})
    video_cache_size: int = field(
        default=0, metadata={"help": "Decoded clips kept per process (LRU); 0 (default): off, as each evaluation "
                                     "video is seen once."}
    )
    # --- generation -------------------------------------------------------------------------------------
    backend: str = field(default="hf", metadata={"help": "'hf' (batched transformers generate) or 'vllm'."})
    batch_size: int = field(default=8, metadata={"help": "Prompts per generate call (and per JSONL flush)."})
    max_new_tokens: int = field(default=2048, metadata={"help": "New tokens per completion. Paper: 2048."})
    do_sample: bool = field(default=False, metadata={"help": "Sample instead of greedy decoding (paper: greedy)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (only with do_sample)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling (only with do_sample)."})
    seed: int = field(default=0, metadata={"help": "Random seed (sampling only)."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto, bfloat16, float16, float32."})
    attn_implementation: Optional[str] = field(
        default=None, metadata={"help": "Attention kernel (default: flash_attention_2 when usable, else sdpa)."}
    )
    device: str = field(default="auto", metadata={"help": "hf backend: auto (cuda if available), cpu, cuda:N."})
    vllm_gpu_memory_utilization: float = field(default=0.9, metadata={"help": "vllm backend: GPU memory share."})
    vllm_tensor_parallel_size: int = field(default=1, metadata={"help": "vllm backend: tensor parallel GPUs."})
    vllm_max_model_len: Optional[int] = field(default=None, metadata={"help": "vllm backend: context length."})
    # --- scoring ----------------------------------------------------------------------------------------
    format_mode: str = field(
        default="strict",
        metadata={"help": "Format check: 'strict' (full match, as the training reward) or 'prefix' (reference)."},
    )
    answer_fallback: bool = field(
        default=True,
        metadata={"help": "Score a completion without <answer> tags on its text (its <think> block removed). Such "
                          "answers broke the format and are reported separately either way."},
    )
    qwen_judge_url: str = field(
        default=f"http://127.0.0.1:{DEFAULT_QWEN_JUDGE_PORT}",
        metadata={"help": "Qwen2.5 judge service (DarkEventInfer, MixVidQA); comma-separated URLs are replicas."},
    )
    caption_judge_url: str = field(
        default=f"http://127.0.0.1:{DEFAULT_CAPTION_JUDGE_PORT}",
        metadata={"help": "AutoDQ caption judge service; comma-separated URLs are replicas."},
    )
    judge_timeout: float = field(default=120.0, metadata={"help": "Seconds per judge HTTP request."})
    judge_retries: int = field(default=3, metadata={"help": "Retries of a failed judge request."})
    judge_concurrency: int = field(default=32, metadata={"help": "Judge requests in flight."})
    judge_batch_size: int = field(default=16, metadata={"help": "Items per /predict_batch request."})
    judge_max_field_chars: int = field(
        default=DEFAULT_MAX_FIELD_CHARS,
        metadata={"help": "The judge services' --max-field-chars: rows whose question, solution or caption event is "
                          "longer are recorded as invalid (the judge would refuse them)."},
    )
    bench_judge_url: str = field(
        default=f"http://127.0.0.1:{DEFAULT_QWEN_JUDGE_PORT}/v1",
        metadata={"help": "OpenAI-compatible endpoint of the benchmark judge (MMVU, VidCapBench; "
                          "versavid_r1.eval.benchmarks.judge). Default: the Qwen2.5 judge service's /v1."},
    )
    bench_judge_model: str = field(
        default="qwen2.5-72b",
        metadata={"help": "Model name sent to the benchmark judge (the benchmarks' own numbers use gpt-4o); "
                          "the name the server replies with is recorded with every score."},
    )
    bench_judge_api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the benchmark judge's API key."}
    )
    bench_prompt_file: Optional[str] = field(
        default=None,
        metadata={"help": "YAML/JSON with the benchmark judges' prompt texts (the benchmarks' own; default: the "
                          "project's wording, see docs/evaluation.md)."},
    )
    shard_index: int = field(default=0, metadata={"help": "This process's share of the rows (0-based); the suite "
                                                          "sets it from torchrun's RANK."})
    num_shards: int = field(default=1, metadata={"help": "How many processes share the rows (rows k, k+N, ...)."})
    check_judges: bool = field(
        default=True, metadata={"help": "Check the needed judges' /health before loading the model."}
    )
    progress: bool = field(default=True, metadata={"help": "Show a progress bar (rows finished) on stderr."})

    def __post_init__(self) -> None:
        choices = (("prompt_mode", PROMPT_MODES), ("backend", BACKENDS), ("data_format", DATA_FORMATS),
                   ("format_mode", FORMAT_MODES))
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("batch_size", "max_new_tokens", "judge_batch_size", "judge_concurrency",
                     "vllm_tensor_parallel_size", "num_shards"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0 <= self.shard_index < max(1, self.num_shards):
            raise ValueError(f"shard_index must be in [0, num_shards), got {self.shard_index} of {self.num_shards}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {self.max_samples}")
        check_bounds(self, EVAL_BOUNDS)  # one line naming the option, before anything is loaded
        super().__post_init__()  # video settings: fail here, before anything is loaded

    def check_runnable(self) -> None:
        """The fields a run needs and that have no default."""
        missing = [f"--{name}" for name in ("model", "data_path") if not getattr(self, name)]
        if missing:
            raise EvalSetupError(f"missing {', '.join(missing)} (in the YAML or as flags)")
        if not os.path.isfile(self.data_path):
            raise EvalSetupError(f"data file not found: {self.data_path}")

    def reward_config(self):
        """The reward settings the scorer passes to `versavid_r1.rewards.score_rows`.

        Composition "sum" makes `score_rows` compute the task score of every row, also of rows that broke
        the format: evaluation reports those separately instead of zeroing them. A judge failure after the
        retries gives None for that row (recorded as `judge_error`, scored again by the next run).
        """
        from versavid_r1.rewards import RewardConfig

        return RewardConfig(
            qwen_judge_urls=self.qwen_judge_url, caption_judge_urls=self.caption_judge_url,
            timeout_s=self.judge_timeout, retries=self.judge_retries, max_concurrency=self.judge_concurrency,
            max_batch_size=self.judge_batch_size, on_judge_error="skip", composition="sum",
            format_mode=self.format_mode, log_metrics=False, log_extra=False,
        )

    def fingerprint(self) -> dict[str, Any]:
        """The result-relevant settings (`RESULT_FIELDS`), paths made absolute."""
        out = {name: getattr(self, name) for name in RESULT_FIELDS}
        for name in ("data_path", "video_root", "base_model"):
            if out[name]:
                out[name] = os.path.abspath(out[name])
        if out["model"] and os.path.exists(out["model"]):
            out["model"] = os.path.abspath(out["model"])
        out["segment_seconds"] = [float(x) for x in out["segment_seconds"]]
        out["prompt"] = self.policy_prompt_config().to_dict()  # the resolved text: a preset edit shows too
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_parser():
    from trl import TrlParser

    return TrlParser((EvalConfig,), prog="python -m versavid_r1.eval")


def parse_eval_args(argv: Optional[Sequence[str]] = None) -> EvalConfig:
    """`--config FILE.yaml` (optional) plus flags -> EvalConfig; flags win over the YAML."""
    (cfg,) = make_parser().parse_args_and_config(list(argv) if argv is not None else None)
    return cfg

