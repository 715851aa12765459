"""`ScriptArguments`: the project's own training options, parsed by `TrlParser` next to GRPOConfig/ModelConfig.

Every option is a flag (`--data_path ...`) and a key of the YAML passed with `--config`. Names must not
clash with GRPOConfig's or ModelConfig's. The video options (`video_root`, `nframes`, `video_fps`, pixels,
`segment_seconds`, `video_seed`, `video_cache_size`, `video_backend`) and `video_config()` come from
`versavid_r1.data.args.VideoArguments`, shared with evaluation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from versavid_r1.data.args import VideoArguments
from versavid_r1.protocol import (
    DEFAULT_CAPTION_JUDGE_PORT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FIELD_CHARS, DEFAULT_MAX_INPUT_TOKENS,
    DEFAULT_QWEN_JUDGE_PORT,
)
from versavid_r1.tasks import CAPTION_JUDGE, QWEN_JUDGE

from .row_guard import DEFAULT_MAX_SKIPPED_ROWS


@dataclass
class ScriptArguments(VideoArguments):
    # --- data -------------------------------------------------------------------------------------
    data_path: Optional[str] = field(
        default=None, metadata={"help": "Training JSONL (one row per line; see versavid_r1.data.schema)."}
    )
    data_mixture: Optional[list[str]] = field(
        default=None,
        metadata={
            "help": "Train on several sources in set proportions instead of data_path alone "
            "(versavid_r1.data.mixture). YAML: a list of {path, weight, problem_type (optional)}; flags: [TYPE@]PATH=WEIGHT ... (a source "
            "without a path uses data_path). Each source gets exactly size x weight / total weight rows, drawn "
            "without replacement (a smaller source repeats), seeded by data_seed (else seed)."
        },
    )
    mixture_size: Optional[int] = field(
        default=None,
        metadata={"help": "Rows per epoch of data_mixture (default: all valid rows of all its sources)."},
    )
    eval_data_path: Optional[str] = field(
        default=None, metadata={"help": "Optional evaluation JSONL (used when eval_strategy != 'no')."}
    )
    skip_invalid: bool = field(
        default=False,
        metadata={"help": "Drop rows that fail validation (each is logged) instead of stopping before training."},
    )
    validate_decode: bool = field(
        default=True,
        metadata={"help": "Before training, load every row's video as training will (decode its sampled frames), so "
                          "a file that does not decode is reported with its line now, not at the step that samples it. "
                          "With several processes each decodes a share. false: check the video headers only."},
    )
    max_skipped_rows: int = field(
        default=DEFAULT_MAX_SKIPPED_ROWS,
        metadata={"help": "Rows that fail to load during training (a file changed or a mount failed since "
                          "validation) are skipped, logged with their file:line, counted (data/skipped_rows) and "
                          "replaced by other rows; more than this many distinct rows stop training with the list."},
    )
    max_train_samples: Optional[int] = field(
        default=None, metadata={"help": "Use only the first N valid rows (smoke tests, demos)."}
    )
    max_prompt_length: Optional[int] = field(
        default=None,
        metadata={
            "help": "Stop with an error naming the row when a prompt (video tokens included) is longer; prompts "
            "are never truncated, as a cut video would no longer match its features. Paper: 8192."
        },
    )
    resume_weights_only: bool = field(
        default=False,
        metadata={
            "help": "Accept a checkpoint without its optimizer, scheduler or RNG state for --resume_from_checkpoint: "
            "the weights and trainer state are restored and the rest starts fresh (said in the log). Without it such "
            "a checkpoint is refused, naming the missing part."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start from step 0 in an output_dir that holds an earlier run (checkpoints, or a finished run's "
            "model), removing everything that run wrote there first (checkpoints, final model, trainer state, run "
            "record, completion samples, logs). Without it (and without --resume_from_checkpoint) such a run is "
            "refused."
        },
    )
    share_prompt_prefill: bool = field(
        default=True,
        metadata={
            "help": "With transformers generation (use_vllm false), run each unique prompt (vision tower + prompt "
            "tokens) once and decode its num_generations completions from a copied KV cache, instead of once per "
            "completion; batches it cannot share fall back to TRL's path. vLLM shares prefixes by itself."
        },
    )
    share_prompt_loss: bool = field(
        default=True,
        metadata={
            "help": "In every log-prob forward (policy, old policy, reference), run each prompt of a micro-batch "
            "(vision tower + prompt tokens) once for all its completions, packed after it under a block mask; "
            "exact, same log-probs and gradients. Generation batches are then shuffled by whole groups so that a "
            "micro-batch of a multiple of num_generations rows holds whole groups. Needs sdpa or eager attention; "
            "forwards it cannot pack run every row's prompt (logged once)."
        },
    )
    prefetch_videos: bool = field(
        default=True,
        metadata={
            "help": "Decode the videos and run the video processor for the next batches in a background thread "
            "while the model trains, instead of at the start of each generation."
        },
    )
    freeze_vision_tower: bool = field(
        default=False,
        metadata={"help": "Train the language model only: the vision encoder (patch embedding, blocks, merger) keeps "
                          "its weights (versavid_r1.modeling.freeze_vision_tower). Full fine-tuning; LoRA adapters "
                          "placed on the vision tower still train."},
    )
    heldout_path: Optional[str] = field(
        default=None,
        metadata={"help": "Multiple-choice JSONL on videos never seen in training: after training, the starting and "
                          "the final policy are evaluated on it greedily, the final one also with every frame grey "
                          "(blind) and with the videos permuted between questions (shuffled); accuracies with 95 %% "
                          "intervals go to OUTPUT_DIR/heldout.json and the closing table (versavid_r1.heldout)."},
    )
    heldout_batch_size: int = field(default=32, metadata={"help": "Prompts per generate call of the held-out evaluation."})
    # --- rewards and judges -------------------------------------------------------------------------
    qwen_judge_url: str = field(
        default=f"http://127.0.0.1:{DEFAULT_QWEN_JUDGE_PORT}",
        metadata={"help": "Qwen2.5 judge service (DarkEventInfer, MixVidQA); comma-separated URLs are replicas."},
    )
    caption_judge_url: str = field(
        default=f"http://127.0.0.1:{DEFAULT_CAPTION_JUDGE_PORT}",
        metadata={"help": "AutoDQ caption judge service (caption); comma-separated URLs are replicas."},
    )
    judge_timeout: float = field(default=120.0, metadata={"help": "Seconds per judge HTTP request."})
    judge_retries: int = field(default=3, metadata={"help": "Retries of a failed judge request."})
    judge_concurrency: int = field(default=32, metadata={"help": "Judge requests in flight per process."})
    judge_batch_size: int = field(default=16, metadata={"help": "Items per /predict_batch request."})
    judge_cache_size: int = field(default=50_000, metadata={"help": "Cached judge verdicts per process (0: off)."})
    on_judge_error: str = field(
        default="raise",
        metadata={
            "help": "What a judge failure does after its retries: 'raise' stops training with the error; 'skip' "
            "gives the affected completions no reward (excluded from their group's baseline) and counts them.",
            "choices": ["raise", "skip"],
        },
    )
    judge_max_unparseable_rate: float = field(
        default=0.1,
        metadata={
            "help": "Judge replies without a clean verdict (and items a judge reports it cannot score) are never "
            "rewarded: they are left out and counted (judge/unparseable, judge/permanent). With on_judge_error "
            "'raise', more than this share of the last 100 judged items failing so stops training."
        },
    )
    reward_composition: str = field(
        default="gate",
        metadata={
            "help": "'gate': reward = format x task (the paper); 'sum': format + task.",
            "choices": ["gate", "sum"],
        },
    )
    format_mode: str = field(
        default="strict",
        metadata={
            "help": "Format gate: 'strict' = the whole completion is <think>..</think><answer>..</answer>; "
            "'prefix' = the reference code's match (text after </answer> tolerated).",
            "choices": ["strict", "prefix"],
        },
    )
    decoy_check: bool = field(
        default=True,
        metadata={"help": "Send each judged answer with other rows' ground truths as decoys: a positive judge score "
                          "that a decoy matches as well is not trusted (reward 0; versavid_r1.judges.decoy). Defends "
                          "against answers that instruct the judge; costs one more judge call per positive score and "
                          "decoy. false: the paper's reward (no check). Logged: judge/decoy_rejection_rate."},
    )
    decoys_per_item: int = field(
        default=1, metadata={"help": "Decoy ground truths per judged answer (1-4) when decoy_check is on."})
    judge_max_field_chars: int = field(
        default=DEFAULT_MAX_FIELD_CHARS,
        metadata={"help": "The judge services' --max-field-chars: a row whose problem, solution or caption event is "
                          "longer is invalid (the judge would refuse it with HTTP 422 at the step that scores it)."},
    )
    judge_max_body_bytes: int = field(
        default=DEFAULT_MAX_BODY_BYTES,
        metadata={"help": "The judges' --max-body-bytes, used until a judge's /health reports its own: a row whose "
                          "request is larger is invalid (413), and the client packs its batches within it."},
    )
    judge_max_input_tokens: int = field(
        default=DEFAULT_MAX_INPUT_TOKENS,
        metadata={"help": "The Qwen judge's --max-input-tokens, used until its /health reports its own: a row whose "
                          "judge prompt can reach more tokens (counted as UTF-8 bytes, a bound for byte-level BPE) is "
                          "invalid (422); a completion that would is not sent (counted as a judge failure)."},
    )
    judge_api_key_env: str = field(
        default="VERSAVID_JUDGE_API_KEY",
        metadata={"help": "Environment variable holding the judges' bearer token (unset: no auth)."},
    )
    check_judges: bool = field(
        default=True,
        metadata={"help": "Before loading the model, check /health of every judge the data needs."},
    )
    judge_ready_timeout: float = field(
        default=300.0,
        metadata={"help": "Seconds to wait for a reachable judge that reports ready=false (model loading)."},
    )

    # --- console ---------------------------------------------------------------------------------------
    compact_log: bool = field(
        default=True,
        metadata={
            "help": "Print one line per logging step (step, reward, format rate, reward per problem type) instead of "
            "transformers' dict of every metric; every metric still goes to report_to and trainer_state.json."
        },
    )

    # --- smoke runs with random weights --------------------------------------------------------------
    demo_answer_bias: float = field(
        default=0.0,
        metadata={
            "help": "Random-weight smoke runs only (0 = off): a logit bias that steers generation towards "
            "`demo_answer_text`, so that the format gate passes sometimes and the rewards and judges get answers "
            "to score. transformers generation only."
        },
    )
    demo_answer_text: str = field(
        default="<think> I watch the video. </think><answer> A </answer>",
        metadata={"help": "The completion `demo_answer_bias` steers towards."},
    )

    def __post_init__(self) -> None:
        if self.on_judge_error not in ("raise", "skip"):
            raise ValueError(f"on_judge_error must be 'raise' or 'skip', got {self.on_judge_error!r}")
        if self.reward_composition not in ("gate", "sum"):
            raise ValueError(f"reward_composition must be 'gate' or 'sum', got {self.reward_composition!r}")
        if self.data_mixture is not None:  # a bad source fails at parse time; kept as mappings for the run record
            from versavid_r1.data.mixture import parse_mixture

            self.data_mixture = [vars(s).copy() for s in parse_mixture(self.data_mixture)]
        if self.mixture_size is not None and self.mixture_size < 1:
            raise ValueError(f"mixture_size must be >= 1, got {self.mixture_size}")
        if self.max_skipped_rows < 0:
            raise ValueError(f"max_skipped_rows must be >= 0, got {self.max_skipped_rows}")
        super().__post_init__()

    def reward_config(self):
        """The `versavid_r1.rewards.RewardConfig` these options describe."""
        from versavid_r1.rewards import RewardConfig

        return RewardConfig(
            qwen_judge_urls=self.qwen_judge_url,
            caption_judge_urls=self.caption_judge_url,
            timeout_s=self.judge_timeout,
            retries=self.judge_retries,
            max_concurrency=self.judge_concurrency,
            max_batch_size=self.judge_batch_size,
            cache_size=self.judge_cache_size,
            on_judge_error=self.on_judge_error,
            max_unparseable_rate=self.judge_max_unparseable_rate,
            composition=self.reward_composition,
            format_mode=self.format_mode,
            decoy_check=self.decoy_check,
            decoys_per_item=self.decoys_per_item,
        )

    def row_limits(self):
        """The `versavid_r1.data.limits.RowLimits` the data is validated against (judges' and prompt limits)."""
        from versavid_r1.data.limits import RowLimits

        return RowLimits(judge_max_field_chars=self.judge_max_field_chars, max_prompt_length=self.max_prompt_length,
                         judge_max_body_bytes=self.judge_max_body_bytes,
                         judge_max_input_tokens=self.judge_max_input_tokens)

    def judge_limits(self) -> dict:
        """Each judge's request limits as these options give them (until its /health reports its own)."""
        limits = self.row_limits()
        return {judge: limits.judge_limits(judge) for judge in (QWEN_JUDGE, CAPTION_JUDGE)}

    def judge_headers(self) -> Optional[dict]:
        """Bearer auth for the judges when the key's environment variable is set."""
        key = os.environ.get(self.judge_api_key_env) if self.judge_api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else None
