"""The summary of an evaluation, computed from the per-sample records only.

`summarize(records)` is a pure function of the current records (one per row of the evaluated data, in
data order), so a summary can always be recomputed from `samples.jsonl`. Per problem type, overall and per
`category`, it reports (records with status "ok"):

- `n`, `n_errors` (rows of that type/category that could not be evaluated: unreadable video, judge error,
  ...; rows whose type is unknown are only counted globally);
- `score_sum`, `score_mean` (accuracy for MCQA and MixVidQA; the paper's DarkEventInfer number is the
  sum of 0/1/2 scores, its mean is given too), `score_mean_errors_as_zero` (errors counted as wrong);
- `format_rate`, and the score split by format: `score_mean_format_ok` / `score_mean_format_broken`
  (answers that broke the format are counted separately, not silently zeroed or mixed in), and
  `gated_score_mean` (format x score, as the training reward would count it);
- captions: `recall` and `precision` (means over samples) and `f1` = 2RP/(R+P) of those means (DREAM-1K's
  AutoDQ F1), plus `f1_sample_mean` and `task_reward_mean` (the training caption reward);
- judged types: `n_unparseable` (samples whose judge reply held no clean verdict: counted among the errors,
  never as a 0) and `n_suspected_injection` (positive verdicts the judge's decoy check did not trust, scored 0).

`markdown(summary)` renders one table per problem type.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Optional

from versavid_r1 import tasks

from .scoring import OK, f1_score

NO_CATEGORY = "(none)"
HEADLINE = {
    tasks.MCQA: "accuracy",
    tasks.MIX_VID_QA: "accuracy",
    tasks.DARK_EVENT_INFER: "score (0/1/2)",
    tasks.CAPTION: "AutoDQ F1",
}


def _mean(values: list[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def group_metrics(records: list[dict], n_errors: int, problem_type: Optional[str]) -> dict[str, Any]:
    """Metrics of one group of ok records (see the module docstring)."""
    scores = [float(r["score"]) for r in records]
    fmt_ok = [float(r["score"]) for r in records if r.get("format_ok")]
    fmt_broken = [float(r["score"]) for r in records if not r.get("format_ok")]
    n = len(records)
    out: dict[str, Any] = {
        "n": n,
        "n_errors": n_errors,
        "score_sum": sum(scores),
        "score_mean": _mean(scores),
        "score_mean_errors_as_zero": sum(scores) / (n + n_errors) if n + n_errors else None,
        "n_format_ok": len(fmt_ok),
        "n_format_broken": len(fmt_broken),
        "format_rate": len(fmt_ok) / n if n else None,
        "score_mean_format_ok": _mean(fmt_ok),
        "score_mean_format_broken": _mean(fmt_broken),
        "gated_score_mean": sum(fmt_ok) / n if n else None,
    }
    if problem_type == tasks.CAPTION:
        recall = _mean([float(r["recall"]) for r in records])
        precision = _mean([float(r["precision"]) for r in records])
        out.update(
            recall=recall,
            precision=precision,
            f1=f1_score(recall, precision) if n else None,
            f1_sample_mean=_mean(scores),
            task_reward_mean=_mean([float(r["task_reward"]) for r in records]),
        )
    return out


def judge_counts(records: list[dict]) -> dict[str, int]:
    """Judge verdicts that are not scores, over all records of a group (ok or not)."""
    verdicts = [str((r.get("judge") or {}).get("verdict")) for r in records]
    return {"n_unparseable": verdicts.count("unparseable"),
            "n_suspected_injection": verdicts.count("suspected_injection")}


def summarize(records: Iterable[dict], meta: Optional[dict] = None) -> dict[str, Any]:
    """The summary dict of the current records (one per evaluated row)."""
    records = list(records)
    status_counts = Counter(str(r.get("status")) for r in records)
    by_type: dict[str, dict[str, Any]] = {}
    # Rows scored by their benchmark's judge alone have no project score: only `benchmarks` reports them.
    project = [r for r in records if not (r.get("bench") or {}).get("only")]
    types = sorted({r["problem_type"] for r in project if r.get("problem_type") in tasks.PROBLEM_TYPES},
                   key=tasks.PROBLEM_TYPES.index)
    for ptype in types:
        mine = [r for r in project if r.get("problem_type") == ptype]
        ok = [r for r in mine if r.get("status") == OK]
        section: dict[str, Any] = {"overall": group_metrics(ok, len(mine) - len(ok), ptype)}
        if ptype in tasks.JUDGED_TYPES:
            section["overall"].update(judge_counts(mine))
        categories = sorted({r.get("category") or NO_CATEGORY for r in mine})
        if categories != [NO_CATEGORY]:
            section["by_category"] = {}
            for cat in categories:
                in_cat = [r for r in mine if (r.get("category") or NO_CATEGORY) == cat]
                ok_cat = [r for r in in_cat if r.get("status") == OK]
                section["by_category"][cat] = group_metrics(ok_cat, len(in_cat) - len(ok_cat), ptype)
                if ptype in tasks.JUDGED_TYPES:
                    section["by_category"][cat].update(judge_counts(in_cat))
        by_type[ptype] = section
    errors = [
        {k: r.get(k) for k in ("id", "line", "status", "problem_type", "error")}
        for r in records if r.get("status") != OK
    ]
    return {
        **(meta or {}),
        "counts": {
            "rows": len(records),
            "scored": status_counts.get(OK, 0),
            "not_scored": len(records) - status_counts.get(OK, 0),
            "by_status": dict(sorted(status_counts.items())),
        },
        "by_type": by_type,
        "errors": errors,
    }


# ------------------------------------------------------------------ markdown ----------------------------
def _pct(v: Optional[float]) -> str:
    return "–" if v is None else f"{100.0 * v:.1f}"


def _num(v: Optional[float], digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _columns(ptype: str) -> list[tuple[str, Any]]:
    """(header, metrics -> cell) of one problem type's table."""
    common = [
        ("n", lambda m: str(m["n"])),
        ("errors", lambda m: str(m["n_errors"])),
    ]
    fmt = [
        ("format ok %", lambda m: _pct(m["format_rate"])),
    ]
    if ptype == tasks.CAPTION:
        return common + [
            ("F1 %", lambda m: _pct(m["f1"])),
            ("recall %", lambda m: _pct(m["recall"])),
            ("precision %", lambda m: _pct(m["precision"])),
        ] + fmt + [
            ("F1 format ok %", lambda m: _pct(m["score_mean_format_ok"])),
            ("F1 format broken %", lambda m: _pct(m["score_mean_format_broken"])),
        ]
    if ptype in (tasks.DARK_EVENT_INFER, tasks.MIX_VID_QA):
        common = common + [("unparseable", lambda m: str(m.get("n_unparseable", 0)))]
    if ptype == tasks.DARK_EVENT_INFER:
        return common + [
            ("score sum", lambda m: _num(m["score_sum"], 1)),
            ("score mean", lambda m: _num(m["score_mean"])),
        ] + fmt + [
            ("mean format ok", lambda m: _num(m["score_mean_format_ok"])),
            ("mean format broken", lambda m: _num(m["score_mean_format_broken"])),
            ("gated mean", lambda m: _num(m["gated_score_mean"])),
        ]
    return common + [
        ("accuracy %", lambda m: _pct(m["score_mean"])),
        ("acc. errors as wrong %", lambda m: _pct(m["score_mean_errors_as_zero"])),
    ] + fmt + [
        ("acc. format ok %", lambda m: _pct(m["score_mean_format_ok"])),
        ("acc. format broken %", lambda m: _pct(m["score_mean_format_broken"])),
        ("gated acc. %", lambda m: _pct(m["gated_score_mean"])),
    ]


def markdown(summary: dict[str, Any]) -> str:
    """Tables of the summary: one per problem type, overall first, then each category."""
    title = summary.get("task_name", "evaluation")
    counts = summary["counts"]
    lines = [f"# {title}", ""]
    if summary.get("model"):
        lines += [f"model: `{summary['model']}`", ""]
    lines.append(
        f"{counts['rows']} rows, {counts['scored']} scored, {counts['not_scored']} not scored"
        + ("" if not counts["not_scored"] else " (" + ", ".join(
            f"{k}: {v}" for k, v in counts["by_status"].items() if k != OK) + ")")
    )
    lines += benchmark_lines(summary.get("benchmarks") or {})
    for ptype, section in summary["by_type"].items():
        cols = _columns(ptype)
        lines += ["", f"## {ptype} ({HEADLINE.get(ptype, 'score')})", "",
                  "| category | " + " | ".join(h for h, _ in cols) + " |",
                  "| --- |" + " ---: |" * len(cols)]
        groups = [("**overall**", section["overall"])] + list(section.get("by_category", {}).items())
        for name, metrics in groups:
            lines.append(f"| {name} | " + " | ".join(cell(metrics) for _, cell in cols) + " |")
    return "\n".join(lines) + "\n"


def value_text(value: Optional[float], percent: bool) -> str:
    """A benchmark number as the paper prints it: a share as a percentage, anything else with one decimal."""
    return "–" if value is None else f"{100.0 * value:.1f}" if percent else f"{value:.1f}"


def benchmark_lines(benchmarks: dict[str, Any]) -> list[str]:
    """One table per benchmark: its official number, then each category axis."""
    lines: list[str] = []
    for section in benchmarks.values():
        pct = section.get("percent", True)
        lines += ["", f"## {section['title']} ({section['metric']}, official scoring)", "",
                  "| category | value | n | errors |", "| --- | ---: | ---: | ---: |",
                  f"| **overall** | {value_text(section.get('value'), pct)} | {section.get('n', 0)} | "
                  f"{section.get('n_errors', 0)} |"]
        for axis, groups in (section.get("by_category") or {}).items():
            for name, m in groups.items():
                lines.append(f"| {axis}: {name} | {value_text(m.get('value'), pct)} | {m.get('n', 0)} | "
                             f"{m.get('n_errors', 0)} |")
    return lines
