"""Difficulty filtering before training (the paper's): what is kept, and the settings of a filtering run.

For every training row the base model samples N answers (default 5) with the training prompt and sampler;
each is scored with the training reward code and judges. `training_config` names the training YAML: its
prompt (preset, instruction, option-letter line), video options, sampler (temperature, top-k, top-p,
repetition penalty, completion length) and format gate are then read from it
(`versavid_r1.data.training_settings`), so the samples are drawn exactly as training will draw them. Then:

- a **non-caption row is dropped when every sample solves it**. A sample *solves* a row when its training
  reward (format gate x task reward, strict format) reaches the task's maximum: MCQA 1 (the right option),
  MixVidQA 1 (the judge says True), DarkEventInfer 2 (the judge: covers the whole ground truth). A right
  answer in a broken format earns 0 in training, so it does not count: such a row still teaches something.
  `max_pass_rate` (default 1.0) moves the line (e.g. 0.8 drops rows that 4 of 5 samples solve);
  `min_pass_rate` (default 0, off; the paper keeps them) can drop rows no sample solves.
- a **caption row is dropped when its AutoDQ F1 varies by less than `min_f1_spread`** (default 0.2) over the N
  samples, where *varies* = max F1 - min F1 and a sample's F1 = 2RP/(R+P) of the caption judge's recall R and
  precision P for the text inside its `<answer>` (as the evaluation computes it; a sample without an answer
  has F1 0). Little spread means GRPO gets almost no advantage from the row.

Rows that could not be scored (unreadable video, judge down) are kept and counted; a rerun scores them.
Every row's pass rate and F1 spread are saved (`samples.jsonl`), so other thresholds only need
`--rescore_only` (no generation). `FilterConfig` extends the evaluation's config (`versavid_r1.eval.config`):
the same model loading, generation backends, judges and video options, with training's defaults.
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

from versavid_r1.eval.config import EvalConfig, EvalSetupError
from versavid_r1.tasks import CAPTION, PROBLEM_TYPES, TASK_REWARD_RANGE

KEEP, TOO_EASY, TOO_HARD, FLAT, UNSCORED = "kept", "dropped: solved", "dropped: unsolved", "dropped: flat F1", \
    "kept: not scored"


@dataclass
class FilterConfig(EvalConfig):
    """`scripts/filter_difficulty.py` options: the evaluation's, with training's video and sampling defaults."""

    data_path: Optional[str] = field(
        default=None, metadata={"help": "Training JSONL to filter.", "aliases": ["--data"]})
    out: Optional[str] = field(default=None, metadata={"help": "JSONL the kept rows are written to."})
    output_dir: Optional[str] = field(
        default=None,
        metadata={"help": "Folder of the per-row records (samples.jsonl, generations.jsonl, report.json); a rerun "
                          "resumes in it. Default: OUT without .jsonl + '_difficulty'.", "aliases": ["--records"]})
    num_samples: int = field(default=5, metadata={"help": "Answers sampled per row (paper: 5)."})
    max_pass_rate: float = field(
        default=1.0, metadata={"help": "Drop non-caption rows solved by at least this share of the samples "
                                       "(1.0: by all of them, the paper)."})
    min_pass_rate: float = field(
        default=0.0, metadata={"help": "Drop non-caption rows solved by less than this share (0: keep all)."})
    min_f1_spread: float = field(
        default=0.2, metadata={"help": "Drop caption rows whose AutoDQ F1 varies (max - min over the samples) by "
                                       "less than this (paper: 0.2)."})
    rescore_only: bool = field(
        default=False, metadata={"help": "Decide again from the saved records with the thresholds given, without "
                                         "generating or scoring anything."})
    skip_invalid: bool = field(
        default=False, metadata={"help": "Leave out rows that fail validation (each logged) instead of stopping."})
    training_config: Optional[str] = field(
        default=None,
        metadata={"help": "The training YAML these rows will train with: its prompt (policy_prompt, "
                          "prompt_instruction, mcqa_suffix), video options, sampler (temperature, top_k, top_p, "
                          "repetition_penalty; max_completion_length as max_new_tokens) and format_mode/decoy_check "
                          "are used, with training's defaults for the keys it does not set. Those options given "
                          "here as well must agree with it."})
    top_k: int = field(default=0, metadata={"help": "Sampling top-k (0: off, TRL's default; the paper config: 50)."})
    repetition_penalty: float = field(default=1.0, metadata={"help": "Repetition penalty (1: off, as in training)."})
    decoy_check: bool = field(
        default=True, metadata={"help": "The judges' decoy check, as the training flag of the same name."})
    # --- training's defaults instead of the evaluation's ---------------------------------------------------
    task_name: str = field(default="difficulty", metadata={"help": "Name shown in the report."})
    do_sample: bool = field(default=True, metadata={"help": "Sample (must stay on: N greedy answers are one)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (training: 1.0)."})
    batch_size: int = field(
        default=2, metadata={"help": "Rows per generate call (each with num_samples completions)."})
    answer_fallback: bool = field(
        default=False, metadata={"help": "Score a completion without <answer> tags on its text (training: no)."})
    video_fps: Optional[float] = field(
        default=None, metadata={"help": "Frames per second (null: nframes, as in training)."})
    max_frames: int = field(default=768, metadata={"help": "Most frames in fps mode."})

    def __post_init__(self) -> None:
        if self.training_config:
            self._apply_training_config()
        if self.out and not self.output_dir:
            stem = self.out[:-len(".jsonl")] if self.out.endswith(".jsonl") else self.out
            self.output_dir = stem + "_difficulty"
        if self.prompt_mode != "think":
            raise ValueError("difficulty filtering samples with the training prompt: prompt_mode must be 'think'")
        if not self.do_sample:
            raise ValueError("difficulty filtering needs sampling (do_sample true): greedy answers are all the same")
        if self.max_samples is not None or self.data_format == "mcqa":
            raise ValueError("difficulty filtering reads every row of a training JSONL: max_samples and "
                             "data_format mcqa are evaluation options")
        if self.rescore_only and self.overwrite:
            raise ValueError("--rescore_only decides from the saved records; --overwrite would delete them")
        if int(self.num_samples) < 2:
            raise ValueError(f"num_samples must be >= 2, got {self.num_samples}")
        for name in ("max_pass_rate", "min_pass_rate"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        if not (math.isfinite(self.min_f1_spread) and self.min_f1_spread >= 0):
            raise ValueError(f"min_f1_spread must be >= 0, got {self.min_f1_spread}")
        super().__post_init__()

    def _apply_training_config(self) -> None:
        """Take the prompt, video, sampler and gate settings from `training_config`; an option set here to
        another value than the class default and than the training config's is an error."""
        from versavid_r1.data.training_settings import training_settings

        own = {f.name: f.default for f in dataclasses.fields(self) if f.default is not dataclasses.MISSING}
        for name, value in training_settings(self.training_config).items():
            mine = getattr(self, name)
            if name in own and mine != own[name] and mine != value:
                raise ValueError(f"{name}={mine!r} conflicts with training_config {self.training_config} "
                                 f"({name}: {value!r}); leave it unset to sample as training does")
            setattr(self, name, value)

    def reward_config(self):
        """The evaluation's reward settings with the training run's decoy check."""
        return dataclasses.replace(super().reward_config(), decoy_check=bool(self.decoy_check))

    def check_runnable(self) -> None:
        super().check_runnable()
        if not self.out:
            raise EvalSetupError("missing --out (the JSONL of the kept rows)")

    def fingerprint(self) -> dict[str, Any]:
        """What decides the samples: the evaluation's result fields plus N and the sampler. The thresholds are
        not in it: changing them needs no new samples."""
        return {**super().fingerprint(), "num_samples": int(self.num_samples), "top_k": int(self.top_k),
                "repetition_penalty": float(self.repetition_penalty), "decoy_check": bool(self.decoy_check)}

    def thresholds(self) -> dict[str, float]:
        return {"max_pass_rate": float(self.max_pass_rate), "min_pass_rate": float(self.min_pass_rate),
                "min_f1_spread": float(self.min_f1_spread)}


# ------------------------------------------------------------------ per row --------------------------------
def sample_reward(format_ok: bool, task_reward: Optional[float]) -> float:
    """The training reward of one sample: format gate x task reward."""
    return float(task_reward or 0.0) if format_ok else 0.0


def solves(problem_type: str, reward: float) -> bool:
    """Does a sample with this training reward solve a row of this type (its task's maximum)?"""
    return reward >= TASK_REWARD_RANGE[problem_type][1] - 1e-9


def row_statistics(problem_type: str, samples: list[dict]) -> dict[str, Any]:
    """What the decision reads, from the scored samples (`format_ok`, `task_reward`, captions `f1`)."""
    if problem_type == CAPTION:
        f1 = [float(s.get("f1") or 0.0) for s in samples]
        return {"f1_min": min(f1), "f1_max": max(f1), "f1_spread": max(f1) - min(f1)}
    solved = sum(solves(problem_type, sample_reward(s["format_ok"], s.get("task_reward"))) for s in samples)
    return {"solved": solved, "pass_rate": solved / len(samples)}


def decide(record: dict, thresholds: dict[str, float]) -> str:
    """KEEP or why the row is dropped (see the module docstring), from its saved record."""
    if record.get("status") != "ok":
        return UNSCORED
    if record["problem_type"] == CAPTION:
        return FLAT if record["f1_spread"] < thresholds["min_f1_spread"] - 1e-12 else KEEP
    n = len(record["samples"])
    solved = record["solved"]
    if solved >= thresholds["max_pass_rate"] * n - 1e-9:
        return TOO_EASY
    if solved < thresholds["min_pass_rate"] * n - 1e-9:
        return TOO_HARD
    return KEEP


# ------------------------------------------------------------------ report ---------------------------------
def summarize(decisions: list[tuple[str, str]], invalid: int, cfg: FilterConfig) -> dict[str, Any]:
    """Counts per problem type: rows, kept, and each reason for dropping; `decisions` = (type, decision)."""
    per_type: dict[str, Counter] = {}
    for ptype, decision in decisions:
        per_type.setdefault(ptype, Counter())[decision] += 1
    order = [t for t in PROBLEM_TYPES if t in per_type] + sorted(set(per_type) - set(PROBLEM_TYPES))
    table = {t: {"rows": sum(per_type[t].values()), "kept": per_type[t][KEEP] + per_type[t][UNSCORED],
                 "not_scored": per_type[t][UNSCORED], "dropped_solved": per_type[t][TOO_EASY],
                 "dropped_unsolved": per_type[t][TOO_HARD], "dropped_flat_f1": per_type[t][FLAT]} for t in order}
    total = {k: sum(row[k] for row in table.values()) for k in
             ("rows", "kept", "not_scored", "dropped_solved", "dropped_unsolved", "dropped_flat_f1")}
    return {"data_path": os.path.abspath(cfg.data_path or ""), "out": os.path.abspath(cfg.out or ""),
            "model": cfg.model, "num_samples": int(cfg.num_samples), "thresholds": cfg.thresholds(),
            "per_type": table, "total": total, "invalid_rows_left_out": invalid}


def markdown(report: dict[str, Any]) -> str:
    cols = ("rows", "kept", "dropped_solved", "dropped_unsolved", "dropped_flat_f1", "not_scored")
    lines = [f"difficulty filter: {report['num_samples']} samples per row, thresholds {report['thresholds']}",
             "| problem type | " + " | ".join(cols) + " |", "| --- " * (len(cols) + 1) + "|"]
    for name, row in [*report["per_type"].items(), ("total", report["total"])]:
        lines.append(f"| {name} | " + " | ".join(str(row[c]) for c in cols) + " |")
    if report["invalid_rows_left_out"]:
        lines.append(f"{report['invalid_rows_left_out']} invalid rows left out (--skip_invalid)")
    return "\n".join(lines)
