"""The training reward: format gate × task reward, dispatched on each row's own problem type.

`versavid_reward(prompts, completions, *, solution, problem_type, problem, log_metric, ...)` is an
async TRL reward function (TRL 1.16 awaits async reward functions on its own event loop and passes
every dataset column plus `log_metric` / `log_extra`). Per row:

* format: `format_ok(completion, cfg.format_mode)` (strict full match by default, see format.py);
* answer: `extract_answer(completion)`; an empty answer scores 0 without a judge call, except a caption: the
  caption judge scores it by its AutoDQ rules (`--scoring project`: 0 and 0 without a model call; `official`,
  DREAM-1K's: no predicted events, so precision 1.0 and recall 0.0);
* task reward by `problem_type`:
  `MCQA` → `multiple_choice_reward` (rule-based, 0/1);
  `DarkEventInfer` → Qwen2.5 judge score 0/1/2; `MixVidQA` → Qwen2.5 judge 0/1 (the judge gets the
  row's own question: the `problem` column, else a `question` column, else the text of the row's
  prompt); `caption` → AutoDQ judge (recall, precision) → `caption_reward`;
* composition: `"gate"` (default, the paper's) → format × task; judge calls are skipped for rows
  that fail the gate (their reward is 0 anyway). `"sum"` → format_weight × format + task_weight ×
  task, every row judged.
* A judge failure raises `JudgeError` (default) or, with `on_judge_error="skip"`, gives `None`
  for that row (TRL treats it as NaN and leaves it out). A row the judge answered but could not
  score (an unparseable verdict, a permanent per-item failure) always gives `None`, never 0; under
  `raise`, too many of them in a row stop the run (`max_unparseable_rate`, see JudgeClient).

Logged through TRL's `log_metric` (values are per process and step; TRL averages them):
`rewards/format/mean`; per problem type present in the batch `rewards/<type>/mean` (returned reward),
`rewards/<type>/task_mean` (task reward before composition, rows where it was computed) and
`rewards/<type>/format`; judge counters of this call `judge/calls`, `judge/cache_hits`,
`judge/retries`, `judge/failures`, `judge/skipped`, `judge/requests`, `judge/unparseable`,
`judge/permanent`, `judge/suspected_injection`, `judge/injection_rejected`, `judge/decoy_checked`,
`judge/decoy_unavailable`, `judge/latency_mean_s`, `judge/latency_max_s`, and, when the decoy check ran,
`judge/decoy_rejection_rate` (rejected / checked: the share of positive scores the check took away;
with an honest policy, its false-rejection rate). Through `log_extra` (columns of TRL's completions table,
`output_dir/completions/*.parquet`): per completion `id` (the row's), `problem_type`, `ground_truth` (the
text inside the solution's `<answer>`), `format` and `task_reward`; TRL adds the total reward.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

from versavid_r1 import prompts as prompt_texts
from versavid_r1 import tasks
from versavid_r1.answer import extract_answer, wrap_answer
from versavid_r1.protocol import (
    DEFAULT_CAPTION_JUDGE_PORT, DEFAULT_QWEN_JUDGE_PORT, MAX_DECOYS_PER_ITEM, CaptionResult, JudgeResult,
)
from versavid_r1.rewards.caption import caption_reward
from versavid_r1.rewards.format import FORMAT_MODES, answer_text, completion_text, format_ok
from versavid_r1.rewards.judge_client import ON_JUDGE_ERROR, JudgeClient, JudgeItem, JudgeStats, _normalise_urls
from versavid_r1.rewards.judge_items import JudgeFailure
from versavid_r1.rewards.mcqa import multiple_choice_reward

Composition = Literal["gate", "sum"]
COMPOSITIONS: tuple[str, ...] = ("gate", "sum")


@dataclass
class RewardConfig:
    """Everything the training reward can be configured with (YAML: a `reward:` mapping, see
    `from_dict`). Judge URLs may be a list or a comma-separated string; several URLs of one judge
    are replicas used round-robin."""

    qwen_judge_urls: tuple[str, ...] = (f"http://127.0.0.1:{DEFAULT_QWEN_JUDGE_PORT}",)
    caption_judge_urls: tuple[str, ...] = (f"http://127.0.0.1:{DEFAULT_CAPTION_JUDGE_PORT}",)
    timeout_s: float = 120.0  # per HTTP request (one item or one batch of up to max_batch_size)
    connect_timeout_s: float = 5.0
    retries: int = 3  # extra attempts after connect errors, timeouts, 5xx, 408, 429
    backoff_s: float = 1.0  # first retry delay; doubles per retry
    backoff_max_s: float = 30.0
    jitter: float = 0.1  # up to +10 % random delay on each backoff
    max_concurrency: int = 32  # HTTP requests in flight per process
    max_batch_size: int = 16  # items per batch-endpoint request
    use_batch_endpoint: bool = True
    cache_size: int = 50_000  # LRU entries; 0 disables the cache
    on_judge_error: str = "raise"  # "raise" | "skip"
    # Unparseable verdicts and permanent per-item failures are never rewards; under "raise", more
    # than this share of the last `unparseable_window` judged items failing so stops the run.
    max_unparseable_rate: float = 0.1
    unparseable_window: int = 100
    composition: str = "gate"  # "gate" (format × task) | "sum" (weighted sum)
    format_weight: float = 1.0  # only for composition="sum"
    task_weight: float = 1.0  # only for composition="sum"
    format_mode: str = "strict"  # "strict" (full match) | "prefix" (reference behaviour)
    # The judges' decoy check (versavid_r1.rewards.decoys, versavid_r1.judges.decoy): each judged item
    # carries `decoys_per_item` other rows' ground truths, and a positive score a decoy matches as well is 0.
    # False: the paper's reward (no check).
    decoy_check: bool = True
    decoys_per_item: int = 1
    log_metrics: bool = True
    log_extra: bool = True

    def __post_init__(self) -> None:
        self.qwen_judge_urls = _normalise_urls(self.qwen_judge_urls)
        self.caption_judge_urls = _normalise_urls(self.caption_judge_urls)
        if self.on_judge_error not in ON_JUDGE_ERROR:
            raise ValueError(f"on_judge_error must be one of {ON_JUDGE_ERROR}, got {self.on_judge_error!r}")
        if self.composition not in COMPOSITIONS:
            raise ValueError(f"composition must be one of {COMPOSITIONS}, got {self.composition!r}")
        if self.format_mode not in FORMAT_MODES:
            raise ValueError(f"format_mode must be one of {FORMAT_MODES}, got {self.format_mode!r}")
        if not 1 <= int(self.decoys_per_item) <= MAX_DECOYS_PER_ITEM:
            raise ValueError(f"decoys_per_item must be within 1..{MAX_DECOYS_PER_ITEM}, got {self.decoys_per_item!r}")
        for name in ("format_weight", "task_weight"):
            if not math.isfinite(float(getattr(self, name))):
                raise ValueError(f"{name} must be finite")
        if not 0.0 <= float(self.max_unparseable_rate) <= 1.0 or int(self.unparseable_window) < 1:
            raise ValueError("max_unparseable_rate must be in [0, 1] and unparseable_window >= 1")
        for name in ("timeout_s", "connect_timeout_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0 (no unbounded waits), got {v!r}")

    @classmethod
    def from_dict(cls, data: Optional[Mapping[str, Any]]) -> "RewardConfig":
        """Build from a mapping (e.g. a YAML section); unknown keys raise naming them."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown reward config key(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["qwen_judge_urls"] = list(self.qwen_judge_urls)
        d["caption_judge_urls"] = list(self.caption_judge_urls)
        return d


@dataclass
class RowScore:
    """The parts of one row's reward (returned by `score_rows` for evaluation and tests)."""

    problem_type: str
    format: float
    answer: str
    task: Optional[float] = None  # None: not computed (gated out) or judge skipped
    reward: Optional[float] = None
    judge_result: Any = None
    skipped: bool = False
    failure: Optional[JudgeFailure] = None  # why a judged row got no score (skipped)

    @property
    def error(self) -> Optional[str]:
        """Why a skipped row's judge failed (the judge's reason), for records."""
        return self.failure.reason if self.failure is not None else None

    @property
    def error_permanent(self) -> bool:
        """Scoring the row again would fail the same way (unparseable verdict, permanent item error)."""
        return self.failure is not None and self.failure.permanent


def _row_question(prompt: Any) -> str:
    """The question of a row, read from its prompt (last user turn's text, instruction removed)."""
    if isinstance(prompt, str):
        text = prompt
    elif isinstance(prompt, (list, tuple)):
        text = ""
        for message in prompt:
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    text = content
                elif isinstance(content, (list, tuple)):
                    text = "".join(
                        p["text"] for p in content
                        if isinstance(p, dict) and p.get("type", "text") == "text" and isinstance(p.get("text"), str)
                    )
    else:
        text = ""
    for suffix in (prompt_texts.THINK_ANSWER_INSTRUCTION, prompt_texts.TAG_INSTRUCTION,
                   prompt_texts.AUTHORS_INSTRUCTION, prompt_texts.DIRECT_ANSWER_INSTRUCTION):
        text = text.replace(suffix, "")
    return text.strip()


def _column(kwargs: Mapping[str, Any], name: str, n: int, required: bool) -> Optional[list]:
    values = kwargs.get(name)
    if values is None:
        if required:
            raise TypeError(
                f"versavid_reward needs the dataset column {name!r} (one value per completion); "
                f"got columns {sorted(k for k in kwargs if k not in ('log_metric', 'log_extra', 'trainer_state'))}"
            )
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"column {name!r} must be a list with one value per completion, got {type(values).__name__}")
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} values for {n} completions")
    return list(values)


async def score_rows(
    completions: Sequence[Any],
    solution: Sequence[str],
    problem_type: Sequence[str],
    questions: Sequence[str],
    cfg: RewardConfig,
    client: JudgeClient,
    events: Optional[Sequence[Optional[Sequence[str]]]] = None,
) -> list[RowScore]:
    """Score rows (the work of `versavid_reward` without the TRL plumbing). `events`: per row, the
    caption's precomputed ground-truth events or None."""
    rows: list[RowScore] = []
    judge_rows: list[int] = []
    judge_items: list[JudgeItem] = []
    for i, completion in enumerate(completions):
        ptype = problem_type[i]
        if ptype not in tasks.PROBLEM_TYPES:
            raise ValueError(f"row {i}: unknown problem_type {ptype!r}; expected one of {tasks.PROBLEM_TYPES}")
        text = completion_text(completion)
        fmt = 1.0 if format_ok(text, cfg.format_mode) else 0.0  # type: ignore[arg-type]
        answer = extract_answer(text)
        row = RowScore(problem_type=ptype, format=fmt, answer=answer)
        rows.append(row)
        if cfg.composition == "gate" and fmt == 0.0:
            continue  # the reward is 0 whatever the task reward: no judge call
        if not answer and ptype != tasks.CAPTION:
            row.task = 0.0
        elif ptype == tasks.MCQA:
            row.task = multiple_choice_reward(wrap_answer(answer), solution[i])
        else:
            sol = solution[i]
            if not isinstance(sol, str):
                raise TypeError(f"row {i}: solution must be a string, got {type(sol).__name__}")
            judge_rows.append(i)
            row_events = tuple(events[i]) if events is not None and events[i] else None
            judge_items.append(JudgeItem(ptype, answer, sol, questions[i] or "", row_events))

    if judge_items:
        results = await client.score_outcomes(judge_items)
        for i, result in zip(judge_rows, results):
            row = rows[i]
            row.judge_result = result
            if isinstance(result, JudgeFailure):
                row.skipped, row.failure, row.judge_result = True, result, result.result
            elif isinstance(result, CaptionResult):
                # a caption the decoy check did not trust scores 0, keyword term included (as a judge's 0)
                row.task = 0.0 if result.suspected_injection else caption_reward(
                    wrap_answer(row.answer), result.recall, result.precision)
            elif isinstance(result, JudgeResult):
                row.task = float(result.output)

    for row in rows:
        if row.skipped:
            row.reward = None
        elif cfg.composition == "gate":
            row.reward = 0.0 if row.format == 0.0 else row.format * float(row.task or 0.0)
        else:
            row.reward = cfg.format_weight * row.format + cfg.task_weight * float(row.task or 0.0)
    return rows


def _row_ids(kwargs: Mapping[str, Any], n: int) -> list[str]:
    """Each row's `id`; a row without one gets `sha:` + 12 hex digits of its question, video and solution,
    the same in every run, so its completions can be followed across steps and runs."""
    ids = _column(kwargs, "id", n, required=False) or [None] * n
    fields = [_column(kwargs, k, n, required=False) or [None] * n for k in ("problem", "video", "solution")]
    out = []
    for i in range(n):
        if ids[i] not in (None, ""):
            out.append(str(ids[i]))
            continue
        text = json.dumps([f[i] for f in fields], sort_keys=True, ensure_ascii=False, default=str)
        out.append("sha:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12])
    return out


def _mean(values: Sequence[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def log_reward_metrics(
    rows: Sequence[RowScore], judge_delta: Mapping[str, float], log_metric: Callable[[str, float], Any]
) -> None:
    """Send the metrics listed in the module docstring to `log_metric(name, value)`."""
    log_metric("rewards/format/mean", _mean([r.format for r in rows]) or 0.0)
    for ptype in tasks.PROBLEM_TYPES:
        mine = [r for r in rows if r.problem_type == ptype]
        if not mine:
            continue
        mean = _mean([r.reward for r in mine if r.reward is not None])
        if mean is not None:
            log_metric(f"rewards/{ptype}/mean", mean)
        task_mean = _mean([r.task for r in mine if r.task is not None])
        if task_mean is not None:
            log_metric(f"rewards/{ptype}/task_mean", task_mean)
        log_metric(f"rewards/{ptype}/format", _mean([r.format for r in mine]) or 0.0)
    for name in ("calls", "cache_hits", "retries", "failures", "skipped", "requests", "unparseable", "permanent",
                 "suspected_injection", "injection_rejected", "decoy_checked", "decoy_unavailable"):
        log_metric(f"judge/{name}", float(judge_delta.get(name, 0)))
    if judge_delta.get("decoy_checked", 0) > 0:
        log_metric("judge/decoy_rejection_rate", judge_delta["injection_rejected"] / judge_delta["decoy_checked"])
    if judge_delta.get("latency_count", 0) > 0:
        log_metric("judge/latency_mean_s", judge_delta["latency_total_s"] / judge_delta["latency_count"])
        log_metric("judge/latency_max_s", float(judge_delta.get("latency_max_s", 0.0)))


def make_versavid_reward(cfg: Optional[RewardConfig] = None, client: Optional[JudgeClient] = None):
    """An async TRL reward function named "versavid_reward", bound to one `JudgeClient`.

    The returned function carries `.config` and `.client` attributes (e.g. for `client.stats`).
    """
    cfg = cfg if cfg is not None else RewardConfig()
    client = client if client is not None else JudgeClient.from_config(cfg)

    async def versavid_reward(prompts: Optional[Sequence[Any]] = None, completions: Sequence[Any] = (), **kwargs: Any):
        n = len(completions)
        solution = _column(kwargs, "solution", n, required=True)
        problem_type = _column(kwargs, "problem_type", n, required=True)
        problem = _column(kwargs, "problem", n, required=False) or _column(kwargs, "question", n, required=False)
        # Each row's own question: its `problem` (or `question`) value, else the text of its prompt.
        prompt_list = list(prompts) if prompts is not None and len(prompts) == n else [None] * n
        questions = [
            str(problem[i]) if problem is not None and problem[i] not in (None, "") else _row_question(prompt_list[i])
            for i in range(n)
        ]

        before = client.stats.snapshot()
        client.stats.reset_latency_max()
        events = _column(kwargs, "events", n, required=False)
        rows = await score_rows(  # type: ignore[arg-type]
            completions, solution, problem_type, questions, cfg, client, events=events
        )
        delta = JudgeStats.delta(client.stats.snapshot(), before)

        log_metric = kwargs.get("log_metric")
        if cfg.log_metrics and callable(log_metric):
            log_reward_metrics(rows, delta, log_metric)
        log_extra = kwargs.get("log_extra")
        if cfg.log_extra and callable(log_extra):  # columns of TRL's completions table
            log_extra("id", _row_ids(kwargs, n))
            log_extra("problem_type", list(problem_type))
            log_extra("ground_truth", [answer_text(s) if isinstance(s, str) else None for s in solution])
            log_extra("format", [r.format for r in rows])
            log_extra("task_reward", [r.task for r in rows])
        return [r.reward for r in rows]

    versavid_reward.__qualname__ = "versavid_reward"
    versavid_reward.config = cfg  # type: ignore[attr-defined]
    versavid_reward.client = client  # type: ignore[attr-defined]
    return versavid_reward


# The default training reward: judges on localhost, ports 5000 (Qwen2.5) and 5200 (caption).
versavid_reward = make_versavid_reward()
