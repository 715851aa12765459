"""`python scripts/filter_difficulty.py --data IN.jsonl --model PATH --out OUT.jsonl [--num_samples 5]`

The run behind `versavid_r1.data.difficulty` (the rules live there), built from the evaluation's parts:
rows are validated as training validates them (`load_rows`' checks), prompts are the training prompts,
the N samples come from the evaluation's generator (`eval.generation`: batched transformers `generate`, or
vLLM with `--backend vllm` on a GPU) at the training sampler (`--training_config`: read from the training
YAML, versavid_r1.data.training_settings), and `eval.scoring.score_completions` scores them with the training
reward code and judges. Records go to two kill-safe record files
(`eval.store.RecordFile`, appended and fsync'ed per batch) in the records folder:
`generations.jsonl` (the N completions of a row, kept even if scoring fails) and `samples.jsonl` (per
row: each sample's format, task reward, training reward and F1, and the row's pass rate / F1 spread). A
rerun skips the rows already scored and scores kept completions without generating again; a rerun with
other sampling settings is refused (`eval.runner.prepare_output`). Rows are keyed by a hash of their
content, so editing the input only redoes the rows that changed.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from versavid_r1.data import VIDEO_PATHS_KEY, DataValidationError, load_video, make_conversation, validate_file
from versavid_r1.data.difficulty import FilterConfig, decide, markdown, row_statistics, sample_reward, summarize
from versavid_r1.data.schema import iter_jsonl
from versavid_r1.eval.config import EvalSetupError
from versavid_r1.eval.converters import write_jsonl
from versavid_r1.eval.runner import GENERATIONS_FILE, RUN_CONFIG, SAMPLES_FILE, prepare_output, prompt_text, row_hash
from versavid_r1.eval.scoring import JUDGE_ERROR, OK, score_completions
from versavid_r1.eval.store import RecordFile

log = logging.getLogger(__name__)
REPORT_FILE = "report.json"
SAMPLE_FIELDS = ("answer", "format_ok", "task_reward", "f1", "recall", "precision", "status")


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _progress(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="row", desc="difficulty", disable=total == 0)


# ------------------------------------------------------------------ rows -----------------------------------
def load_items(cfg: FilterConfig) -> tuple[list[dict], int]:
    """The valid rows as items {id, line, row}, and the number of invalid rows left out (`skip_invalid`);
    otherwise invalid rows stop the run with every problem listed, as training would."""
    report = validate_file(cfg.data_path, cfg=cfg.video_config(), skip_invalid=cfg.skip_invalid)
    file_errors = [e for e in report.errors if e.line == 0]
    if file_errors or (report.errors and not cfg.skip_invalid) or not report.rows:
        raise DataValidationError(report)
    items = []
    for line, row in zip(report.lines, report.rows):
        rid = row_hash({k: v for k, v in row.items() if k != VIDEO_PATHS_KEY})
        items.append({"id": rid, "line": line, "row": row})
    return items, report.n_invalid


def _record(item: dict, cfg: FilterConfig, **fields: Any) -> dict:
    return {"id": item["id"], "line": item["line"], "row_hash": item["id"],
            "problem_type": item["row"]["problem_type"], "num_samples": int(cfg.num_samples), **fields}


# ------------------------------------------------------------------ generation and scoring -----------------
def _prepare(batch: Sequence[dict], generator, cfg: FilterConfig, vcfg) -> tuple[list, list[dict]]:
    """(items with their prompt text and inputs, error records) for one batch: the training prompt."""
    ready, errors = [], []
    for item in batch:
        try:
            clip = load_video(item["row"], vcfg)
            messages = make_conversation(item["row"], vcfg, prompt=cfg.policy_prompt_config())  # training's
            inputs = generator.prepare(messages, [clip])
        except Exception as exc:  # noqa: BLE001 - a decoder/processor failure is this row's error
            log.warning("row on line %d: %s: %s", item["line"], type(exc).__name__, exc)
            errors.append(_record(item, cfg, status="video_error", error=f"{type(exc).__name__}: {exc}"))
            continue
        ready.append((item, prompt_text(messages), inputs))
    return ready, errors


def score_batch(batch: Sequence[tuple[dict, list[str]]], cfg: FilterConfig, client) -> list[dict]:
    """One record per (item, its completions), scored with the training reward code and judges."""
    from versavid_r1.rewards import JudgeError

    rows = [item["row"] for item, comps in batch for _ in comps]
    flat = [c for _, comps in batch for c in comps]
    try:
        fields = asyncio.run(_score(rows, flat, cfg, client))
    except JudgeError as exc:  # a request the judge rejects (4xx): keep the completions, report, score later
        log.error("scoring a batch failed: %s", exc)
        return [_record(item, cfg, status=JUDGE_ERROR, error=str(exc)) for item, _ in batch]
    records, k = [], 0
    for item, comps in batch:
        scored = fields[k:k + len(comps)]
        k += len(comps)
        samples = [{key: f.get(key) for key in SAMPLE_FIELDS if key in f} for f in scored]
        for s in samples:
            s["reward"] = sample_reward(bool(s["format_ok"]), s.get("task_reward"))
        if any(f["status"] != OK for f in scored):
            records.append(_record(item, cfg, status=JUDGE_ERROR, samples=samples,
                                   error="a judge failed after its retries; a rerun scores the kept completions"))
            continue
        ptype = item["row"]["problem_type"]
        records.append(_record(item, cfg, status=OK, samples=samples, **row_statistics(ptype, samples)))
    return records


async def _score(rows, completions, cfg, client):
    try:
        return await score_completions(rows, completions, cfg, client)
    finally:
        await client.aclose()


def _check_judges(cfg: FilterConfig, items: Sequence[dict]) -> None:
    from versavid_r1.trainer.preflight import PreflightError, check_judges, judges_needed

    needed = judges_needed([it["row"] for it in items], cfg.qwen_judge_url, cfg.caption_judge_url)
    try:
        check_judges(needed, ready_timeout=0.0, request_timeout=min(10.0, cfg.judge_timeout), what="filtering",
                     skip_hint="--check_judges false skips this check: those rows are then kept as not scored, "
                               "with their completions, and a later run scores them.")
    except PreflightError as err:
        raise EvalSetupError(str(err)) from None


def sample_and_score(cfg: FilterConfig, items: list[dict], out: Path, generator=None) -> dict[str, int]:
    """Generate and score the rows without a finished record; returns what was done."""
    samples, generations = RecordFile(out / SAMPLES_FILE), RecordFile(out / GENERATIONS_FILE)
    done, kept = samples.load(), generations.load()
    n = int(cfg.num_samples)
    todo = [it for it in items if done.get(it["id"], {}).get("status") != OK]
    to_score = [it for it in todo if len(kept.get(it["id"], {}).get("completions") or []) == n]
    scoring_ids = {it["id"] for it in to_score}
    to_generate = [it for it in todo if it["id"] not in scoring_ids]
    stats = {"rows": len(items), "finished_earlier": len(items) - len(todo), "scored_from_kept": len(to_score),
             "generated": 0, "generate_calls": 0}
    log.info("%d rows: %d finished earlier, %d to score from kept completions, %d to generate",
             len(items), stats["finished_earlier"], len(to_score), len(to_generate))
    if not todo:
        return stats
    if cfg.check_judges:
        _check_judges(cfg, todo)
    from versavid_r1.rewards import JudgeClient

    client = JudgeClient.from_config(cfg.reward_config())
    vcfg = cfg.video_config()
    with _progress(len(todo)) as bar:
        for batch in _chunks(to_score, cfg.batch_size):
            samples.append(score_batch([(it, kept[it["id"]]["completions"]) for it in batch], cfg, client))
            bar.update(len(batch))
        if to_generate:
            if generator is None:
                from versavid_r1.eval.generation import make_generator

                generator = make_generator(cfg, str(out))
            calls = generator.calls
            for batch in _chunks(to_generate, cfg.batch_size):
                ready, errors = _prepare(batch, generator, cfg, vcfg)
                samples.append(errors)
                if ready:
                    outputs = generator.generate_samples([inputs for _, _, inputs in ready], n)
                    generations.append([{"id": it["id"], "row_hash": it["id"], "line": it["line"], "prompt": text,
                                         "completions": comps} for (it, text, _), comps in zip(ready, outputs)])
                    stats["generated"] += len(ready)
                    samples.append(score_batch([(it, comps) for (it, _, _), comps in zip(ready, outputs)], cfg,
                                               client))
                bar.update(len(batch))
            stats["generate_calls"] = generator.calls - calls
    return stats


# ------------------------------------------------------------------ decisions and output -------------------
def _relocate(row: dict, src_dir: Path, dst_dir: Path) -> dict:
    """A row written into another folder: relative video paths re-expressed from the new folder (training
    resolves them against the JSONL's folder by default)."""
    if src_dir == dst_dir:
        return row

    def move(v: str) -> str:
        return v if os.path.isabs(v) else os.path.relpath(src_dir / v, dst_dir)

    video = row.get("video")
    out = dict(row)
    out["video"] = [move(v) for v in video] if isinstance(video, list) else move(video)
    return out


def write_outputs(cfg: FilterConfig, items: list[dict], invalid: int, out: Path) -> dict[str, Any]:
    """Decide every row from its record, write the kept rows (as written in the input, in input order) and the
    report; returns the report."""
    records = RecordFile(out / SAMPLES_FILE).load()
    thresholds = cfg.thresholds()
    keep_lines, decisions = set(), []
    for it in items:
        decision = decide(records.get(it["id"], {"status": "missing"}), thresholds)
        decisions.append((it["row"]["problem_type"], decision))
        if decision.startswith("kept"):
            keep_lines.add(it["line"])
    src_dir = Path(cfg.data_path).resolve().parent
    dst_dir = Path(cfg.out).resolve().parent
    if cfg.video_root:
        src_dir = dst_dir  # paths are relative to the given video_root: keep them as written
    raw = {line: obj for line, obj, _ in iter_jsonl(cfg.data_path)}
    write_jsonl((_relocate(raw[line], src_dir, dst_dir) for line in sorted(keep_lines)), cfg.out)
    report = summarize(decisions, invalid, cfg)
    report["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    (out / REPORT_FILE).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


def run_filter(cfg: FilterConfig, generator=None) -> dict[str, Any]:
    """Filter `cfg.data_path` into `cfg.out` (see the module docstring); returns the report (with `run`)."""
    cfg.check_runnable()
    out = Path(cfg.output_dir)
    items, invalid = load_items(cfg)
    if cfg.rescore_only and not (out / RUN_CONFIG).is_file():
        raise EvalSetupError(f"--rescore_only: no records in {out} (run without it first)")
    prepare_output(out, cfg)  # records made with other sampling settings are refused, also for rescoring
    if cfg.rescore_only:
        stats: dict[str, int] = {"rows": len(items)}
    else:
        stats = sample_and_score(cfg, items, out, generator)
    report = write_outputs(cfg, items, invalid, out)
    report["run"] = stats
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from trl import TrlParser

    try:
        (cfg,) = TrlParser((FilterConfig,), prog="filter_difficulty.py").parse_args_and_config(argv)
        report = run_filter(cfg)
    except (ValueError, EvalSetupError, ImportError) as exc:  # DataValidationError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(report))
    total = report["total"]
    print(f"kept {total['kept']} of {total['rows']} rows -> {cfg.out}\nper-row records and report: {cfg.output_dir}")
    if total["not_scored"]:
        print(f"{total['not_scored']} rows could not be scored and were kept; rerun the same command to score "
              "them", file=sys.stderr)
    if total["rows"] and total["not_scored"] == total["rows"]:
        return 1
    return 0
