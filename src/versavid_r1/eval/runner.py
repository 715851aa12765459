"""`run_eval(cfg)`: evaluate a checkpoint on one benchmark file, resumably.

Order of work (cheap checks first, nothing is lost):

1. the output folder: `eval_config.json` records the result-relevant settings (`EvalConfig.fingerprint`);
   resuming with other settings is refused unless `--overwrite`;
2. the data: every line becomes an item (`formats.load_eval_items`); bad rows are recorded in
   `samples.jsonl` with status "invalid_row", their line number and the reason;
3. what is left to do: rows whose current record is "ok" (for the same row content) are finished and
   skipped; rows with a kept completion in `generations.jsonl` are only scored; the rest are generated;
4. judge health for the problem types still to score (before the model is loaded);
5. batches: decode the videos (an unreadable one is recorded as "video_error"), build the inputs as the
   trainer does, generate, append the completions to `generations.jsonl`, then score them (in a
   background thread, overlapping the next batch's generation) and append the results to `samples.jsonl`;
6. `summary.json` and `summary.md` from the current records of the evaluated rows.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from tqdm.auto import tqdm

from versavid_r1 import prompts
from versavid_r1.answer import extract_answer
from versavid_r1.data import load_video, make_conversation
from versavid_r1.data.limits import RowLimits
from versavid_r1.rewards import JudgeClient, JudgeError
from versavid_r1.run_record import environment

from .config import EvalSetupError
from .formats import EvalItem, load_eval_items
from .benchmarks import bench_only
from .official import official_summary, score_batch
from .report import markdown, summarize
from .scoring import JUDGE_ERROR, OK
from .store import RecordFile

log = logging.getLogger(__name__)

SAMPLES_FILE = "samples.jsonl"
GENERATIONS_FILE = "generations.jsonl"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
RUN_CONFIG = "eval_config.json"
MERGED_MODEL = "merged-model"
INVALID_ROW = "invalid_row"
VIDEO_ERROR = "video_error"
INPUT_ERROR = "input_error"


@dataclass
class RunStats:
    """What this invocation did (the summary's `run` section)."""

    rows: int = 0
    already_finished: int = 0
    generated: int = 0
    scored_from_kept_generations: int = 0
    errors_recorded: int = 0
    generate_calls: int = 0
    seconds: float = 0.0


# ------------------------------------------------------------------ helpers -----------------------------
def row_hash(row: Optional[dict]) -> Optional[str]:
    """A short hash of a row's content: a record made for other content is not reused."""
    if row is None:
        return None
    text = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def prompt_text(messages: list[dict]) -> str:
    """The text parts of the user turn (question + instruction), without the video placeholder."""
    parts = messages[-1]["content"]
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict) and p.get("type") == "text")


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _base_record(item: EvalItem) -> dict[str, Any]:
    row = item.row or {}
    record = {
        "id": item.id,
        "line": item.line,
        "row_hash": row_hash(item.row),
        "problem_type": item.problem_type,
        "category": item.category,
        "question": row.get("problem"),
        "ground_truth": extract_answer(row["solution"]) if isinstance(row.get("solution"), str) else None,
    }
    for key in ("benchmark", "categories", "bench"):  # a benchmark row's own fields (eval.benchmarks)
        if row.get(key) is not None:
            record[key] = row[key]
    return record


def _error_record(item: EvalItem, status: str, error: str) -> dict[str, Any]:
    return {**_base_record(item), "status": status, "error": error, "score": None}


def _same_error(previous: Optional[dict], record: dict) -> bool:
    return bool(previous) and all(previous.get(k) == record.get(k) for k in ("status", "error", "row_hash"))


# ------------------------------------------------------------------ output folder -----------------------
def prepare_output(out: Path, cfg) -> None:
    """Create the folder; refuse to mix results of different settings (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / RUN_CONFIG
    result_files = [out / SAMPLES_FILE, out / GENERATIONS_FILE]
    if cfg.overwrite:
        for name in (SAMPLES_FILE, GENERATIONS_FILE, SUMMARY_JSON, SUMMARY_MD, RUN_CONFIG):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / MERGED_MODEL, ignore_errors=True)
    elif config_path.is_file() and any(p.is_file() for p in result_files):
        old = json.loads(config_path.read_text(encoding="utf-8")).get("fingerprint", {})
        new = cfg.fingerprint()
        diff = {k: (old.get(k), new.get(k)) for k in new if old.get(k) != new.get(k)}
        if diff:
            details = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in diff.items()))
            raise EvalSetupError(
                f"{out} holds results made with other settings ({details}). Use another --output_dir, "
                "or --overwrite to delete them."
            )
    config_path.write_text(json.dumps({"fingerprint": cfg.fingerprint(), "config": cfg.to_dict()}, indent=1),
                           encoding="utf-8")


# ------------------------------------------------------------------ scoring worker ----------------------
class _Scorer:
    """Scores batches in one background thread, one batch at a time, and appends the results.

    Judges are remote services: scoring batch k while batch k+1 is generated hides their latency. At
    most one batch waits here; `submit` first waits for the previous one (so its errors surface).
    """

    def __init__(self, cfg, samples: RecordFile, progress=None):
        self.cfg = cfg
        self.samples = samples
        self.progress = progress  # a tqdm bar (thread-safe updates), or None
        self.client = JudgeClient.from_config(cfg.reward_config())
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eval-scorer")
        self._pending: Optional[Future] = None

    def submit(self, batch: list[tuple[EvalItem, dict]]) -> None:
        self.wait()
        self._pending = self._pool.submit(self._score_and_write, batch)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def _score_and_write(self, batch: list[tuple[EvalItem, dict]]) -> None:
        rows = [item.row for item, _ in batch]
        completions = [gen["completion"] for _, gen in batch]
        try:
            fields = asyncio.run(self._score(rows, completions))
        except JudgeError as exc:  # a request the judge rejects (4xx): keep the completions, report
            log.error("scoring a batch failed: %s", exc)
            fields = [{"status": JUDGE_ERROR, "score": None, "error": str(exc)} for _ in batch]
        records = []
        for (item, gen), f in zip(batch, fields):
            records.append({**_base_record(item), "prompt": gen.get("prompt"), "completion": gen["completion"],
                            "num_frames": gen.get("num_frames"), **f})
        self.samples.append(records)
        if self.progress is not None:
            self.progress.update(len(records))

    async def _score(self, rows, completions):
        try:
            return await score_batch(rows, completions, self.cfg, self.client)
        finally:
            await self.client.aclose()


# ------------------------------------------------------------------ the run -----------------------------
def _check_judges(cfg, items: Sequence[EvalItem]) -> None:
    """Stop before the model is loaded when a judge the rows need does not answer /health."""
    from versavid_r1.trainer.preflight import PreflightError, check_judges, judges_needed

    rows = [it.row for it in items if not bench_only(it.row)]  # benchmark-judged rows need no project judge
    needed = judges_needed(rows, cfg.qwen_judge_url, cfg.caption_judge_url)
    try:
        check_judges(
            needed, ready_timeout=0.0, request_timeout=min(10.0, cfg.judge_timeout), what="evaluation",
            skip_hint="--check_judges false skips this check: those rows are then recorded as judge_error, with "
            "their completions kept, and a later run scores them.",
        )
    except PreflightError as err:
        raise EvalSetupError(str(err)) from None


def _prepare(batch: Sequence[EvalItem], generator, cfg, vcfg, done: dict) -> tuple[list, list[dict]]:
    """(items with their prompt inputs, error records) for one batch."""
    instruction = prompts.DIRECT_ANSWER_INSTRUCTION if cfg.prompt_mode == "direct" else None
    policy_prompt = cfg.policy_prompt_config()
    ready, errors = [], []
    for item in batch:
        status, error = VIDEO_ERROR, None
        try:
            clip = load_video(item.row, vcfg)
            status = INPUT_ERROR
            messages = make_conversation(item.row, vcfg, instruction=instruction, prompt=policy_prompt)
            inputs = generator.prepare(messages, [clip])
        except Exception as exc:  # noqa: BLE001 - any decoder/processor failure is this row's error
            error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            log.warning("row %s (line %d): %s: %s", item.id, item.line, status, error)
            record = _error_record(item, status, error)
            if not _same_error(done.get(item.id), record):
                errors.append(record)
            continue
        ready.append((item, prompt_text(messages), inputs, clip.num_frames))
    return ready, errors


def select_items(cfg) -> list[EvalItem]:
    """The items of `cfg.data_path` this run evaluates (the first `max_samples`), before any sharding."""
    items = load_eval_items(cfg.data_path, cfg.data_format, cfg.video_config(),
                            RowLimits(judge_max_field_chars=cfg.judge_max_field_chars))
    return items[: cfg.max_samples] if cfg.max_samples else items


def run_eval(cfg, generator=None) -> dict[str, Any]:
    """Evaluate `cfg.model` on `cfg.data_path` into `cfg.output_dir`; returns the summary (see module doc).

    `generator` (tests, notebooks): an already built generator (`generation.HFGenerator`) to reuse.
    """
    t0 = time.monotonic()
    cfg.check_runnable()
    out = Path(cfg.output_dir)
    prepare_output(out, cfg)
    vcfg = cfg.video_config()
    items = select_items(cfg)
    if cfg.num_shards > 1:  # this process's rows (eval.shard merges the shards' records)
        items = items[cfg.shard_index::cfg.num_shards]
    samples, generations = RecordFile(out / SAMPLES_FILE), RecordFile(out / GENERATIONS_FILE)
    done, kept = samples.load(), generations.load()
    stats = RunStats(rows=len(items))

    bad = [_error_record(it, INVALID_ROW, it.error) for it in items if not it.ok]
    for record in bad:
        log.warning("row %s (line %d): invalid: %s", record["id"], record["line"], record["error"])
    stats.errors_recorded += samples.append([r for r in bad if not _same_error(done.get(r["id"]), r)])

    def finished(it: EvalItem) -> bool:
        rec = done.get(it.id)
        return bool(rec) and rec.get("status") == OK and rec.get("row_hash") == row_hash(it.row)

    valid = [it for it in items if it.ok]
    stats.already_finished = sum(finished(it) for it in valid)
    pending = [it for it in valid if not finished(it)]
    to_score = [it for it in pending if kept.get(it.id, {}).get("row_hash") == row_hash(it.row)]
    scoring_ids = {it.id for it in to_score}
    to_generate = [it for it in pending if it.id not in scoring_ids]
    log.info("%s: %d rows (%d invalid), %d finished earlier, %d to score from kept completions, %d to generate",
             cfg.data_path, len(items), len(bad), stats.already_finished, len(to_score), len(to_generate))
    if pending and cfg.check_judges:
        _check_judges(cfg, pending)

    progress = tqdm(total=len(pending), desc=f"eval {cfg.task_name}", unit="row", disable=not cfg.progress,
                    dynamic_ncols=True)
    scorer = _Scorer(cfg, samples, progress)
    try:
        for batch in _chunks(to_score, cfg.batch_size):
            scorer.submit([(it, kept[it.id]) for it in batch])
            stats.scored_from_kept_generations += len(batch)
        if to_generate:
            generator = generator or _make_generator(cfg, out)
            calls_before = generator.calls
            n_batches = (len(to_generate) + cfg.batch_size - 1) // cfg.batch_size
            for k, batch in enumerate(_chunks(to_generate, cfg.batch_size), start=1):
                ready, errors = _prepare(batch, generator, cfg, vcfg, done)
                stats.errors_recorded += samples.append(errors)
                progress.update(len(batch) - len(ready))
                if not ready:
                    continue
                completions = generator.generate([inputs for _, _, inputs, _ in ready])
                gens = [{"id": it.id, "row_hash": row_hash(it.row), "prompt": text, "completion": c,
                         "num_frames": nf} for (it, text, _, nf), c in zip(ready, completions)]
                generations.append(gens)
                stats.generated += len(gens)
                scorer.submit([(it, g) for (it, *_), g in zip(ready, gens)])
                log.info("batch %d/%d: %d completions (%.1f s so far)", k, n_batches, len(gens),
                         time.monotonic() - t0)
            stats.generate_calls = generator.calls - calls_before
    finally:
        scorer.close()
        progress.close()

    stats.seconds = round(time.monotonic() - t0, 3)
    return write_summary(cfg, items, samples, stats)


def _make_generator(cfg, out: Path):
    from .generation import make_generator

    return make_generator(cfg, str(out))


def write_summary(cfg, items: Sequence[EvalItem], samples: RecordFile, stats: RunStats) -> dict[str, Any]:
    """summary.json and summary.md from the current records of `items` (in data order)."""
    current = samples.load()
    records = [current[it.id] for it in items if it.id in current]
    out = Path(cfg.output_dir)
    summary = summarize(records, {
        "task_name": cfg.task_name,
        "model": cfg.model,
        "data_path": cfg.data_path,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": {"samples": str(out / SAMPLES_FILE), "generations": str(out / GENERATIONS_FILE),
                  "summary_md": str(out / SUMMARY_MD)},
        "run": asdict(stats),
        "config": cfg.to_dict(),
        "prompt": cfg.policy_prompt_config().to_dict(),
        "environment": environment(),
    })
    summary["benchmarks"] = official_summary(records)
    missing = len(items) - len(records)
    if missing:  # cannot happen unless a record file was edited by hand; never hide it
        summary["counts"]["missing_records"] = missing
    _write_atomic(out / SUMMARY_JSON, json.dumps(summary, indent=1, ensure_ascii=False, default=str))
    _write_atomic(out / SUMMARY_MD, markdown(summary))
    return summary


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
