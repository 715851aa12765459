"""Scoring a batch: the project's scores (`scoring.score_completions`) plus, for rows of a known benchmark, the
benchmark's official scoring (`versavid_r1.eval.benchmarks`), and the official numbers of a run.

Per row of a batch:

- a row marked `bench.only` (MMVU's open-ended questions, VidCapBench) gets no project reward: only its
  answer, format check and the benchmark's score (its `score` is the official one);
- every other row is scored by the project as before; a row of a known benchmark then gets the official
  fields too (`official_answer`, `official_parsed`, `official_score`, for judged ones `official_judge`);
- a benchmark judge that fails leaves the row `judge_error` (its completion kept, scored again by the next
  run), never a 0.
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, Optional, Sequence

from .benchmarks import bench_only, get_benchmark
from .benchmarks.judge import BenchJudge, BenchJudgeError, BenchJudgeSettings
from .scoring import JUDGE_ERROR, OK, answer_of, completion_format_ok, score_completions


async def score_batch(rows: Sequence[dict], completions: Sequence[str], cfg, client) -> list[dict[str, Any]]:
    """Score fields of each (row, completion) (see the module docstring)."""
    out: list[dict[str, Any]] = [{} for _ in rows]
    project = [i for i, r in enumerate(rows) if not bench_only(r)]
    if project:
        scored = await score_completions([rows[i] for i in project], [completions[i] for i in project], cfg, client)
        for i, fields in zip(project, scored):
            out[i] = fields
    for i, row in enumerate(rows):
        if bench_only(row):
            answer, tagged = answer_of(completions[i], cfg.answer_fallback)
            out[i] = {"answer": answer, "answer_tagged": tagged,
                      "format_ok": completion_format_ok(completions[i], cfg.prompt_mode, cfg.format_mode)}
    official = [i for i, r in enumerate(rows) if get_benchmark(r.get("benchmark")) is not None]
    if not official:
        return out
    judge = None
    if any(get_benchmark(rows[i]["benchmark"]).needs_judge() for i in official):
        judge = BenchJudge(BenchJudgeSettings.from_config(cfg))
    try:
        results = await asyncio.gather(*(_official(rows[i], completions[i], out[i], judge) for i in official))
    finally:
        if judge is not None:
            await judge.aclose()
    for i, fields in zip(official, results):
        out[i].update(fields)
    return out


async def _official(row: dict, completion: str, fields: dict, judge: Optional[BenchJudge]) -> dict[str, Any]:
    only = bench_only(row)
    if not only and fields.get("status") != OK:
        return {}  # the project's judge failed: the row is scored again (officially too) by the next run
    try:
        result = await get_benchmark(row["benchmark"]).score(row, completion, fields, judge)
    except BenchJudgeError as exc:
        return {"status": JUDGE_ERROR, "score": None if only else fields.get("score"), "judge_failure": "outage",
                "error": f"benchmark judge: {exc}; the next run scores this sample again",
                "judge_error_permanent": False}
    if only:
        result.update(status=OK, score=result.get("official_score"), task_reward=None)
    return result


def official_summary(records: Sequence[dict]) -> dict[str, Any]:
    """{benchmark name: its aggregate} over the records of each known benchmark present."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if get_benchmark(r.get("benchmark")) is not None:
            groups[r["benchmark"]].append(r)
    out = {}
    for name, mine in groups.items():
        bench = get_benchmark(name)
        out[name] = {"title": bench.title, "metric": bench.metric, "percent": bench.percent,
                     "scoring": bench.scoring, **bench.aggregate(mine)}
        judged = [r["official_judge"] for r in mine if r.get("official_judge")]
        if judged:  # the benchmark judge that scored them (model, served model, URL, prompts)
            out[name]["judge"] = {k: v for k, v in judged[-1].items() if k != "reply"}
    return out
