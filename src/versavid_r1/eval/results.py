"""The suite's results.json and results.md: one row per benchmark in the paper's layout (this run's number,
the paper's VersaVid-R1 number and the strongest baseline, the differences), then each benchmark's
per-category breakdown, and the settings every number was made with (frames, pixels, decoding, prompt,
judges). Numbers are on the paper's scale: percentages for shares, the plain sum for DarkEventInfer-Test.
Everything is computed from the benchmarks' summaries, which are computed from their samples.jsonl.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from versavid_r1.run_record import environment

from .benchmarks import BENCHMARKS

PROTOCOL_FIELDS = ("nframes", "video_fps", "min_frames", "max_frames", "min_pixels", "max_pixels", "total_pixels",
                   "video_time_encoding", "max_new_tokens", "do_sample", "temperature", "top_p", "prompt_mode",
                   "policy_prompt", "backend", "dtype", "format_mode", "answer_fallback")


def _scale(value: Optional[float], percent: bool) -> Optional[float]:
    return None if value is None else round(100.0 * value if percent else value, 4)


def _diff(value: Optional[float], ref: Optional[float]) -> Optional[float]:
    return None if value is None or ref is None else round(value - ref, 4)


def _judges(cfg, bench, section: dict[str, Any], records_judge: Optional[dict]) -> dict[str, Any]:
    if bench.scoring == "benchmark judge":
        return {"benchmark_judge": records_judge or {"model": cfg.bench_judge_model, "url": cfg.bench_judge_url,
                                                     "prompts": cfg.bench_prompt_file or "project"}}
    if bench.scoring == "project judge":
        return {"qwen_judge_url": cfg.qwen_judge_url, "caption_judge_url": cfg.caption_judge_url}
    return {}


def benchmark_row(outcome: dict[str, Any]) -> dict[str, Any]:
    entry = outcome["entry"]
    bench = BENCHMARKS[entry.name]
    row: dict[str, Any] = {"name": entry.name, "title": bench.title, "metric": bench.metric,
                           "status": outcome["status"], "paper": entry.paper, "baseline": entry.baseline,
                           "paper_note": entry.paper_note, "scoring": bench.scoring, "source": bench.source}
    if outcome["status"] == "skipped":
        row.update(data=outcome["data"], how_to_get=bench.download)
        return row
    cfg = outcome["cfg"]
    row["protocol"] = {k: getattr(cfg, k) for k in PROTOCOL_FIELDS}
    row["output_dir"] = str(Path(cfg.output_dir))
    if outcome["status"] == "error":
        row["error"] = outcome["error"]
        return row
    summary = outcome["summary"]
    section = (summary.get("benchmarks") or {}).get(entry.name, {})
    value = _scale(section.get("value"), bench.percent)
    row.update(value=value, diff_paper=_diff(value, entry.paper), diff_baseline=_diff(value, entry.baseline),
               n=section.get("n", 0), n_errors=section.get("n_errors", summary["counts"]["not_scored"]),
               rows=summary["counts"]["rows"],
               judges=_judges(cfg, bench, section, section.get("judge")),
               details={k: v for k, v in section.items() if k not in ("by_category", "title", "metric")},
               by_category={axis: {name: {"value": _scale(m.get("value"), bench.percent), "n": m.get("n", 0),
                                          "n_errors": m.get("n_errors", 0)} for name, m in groups.items()}
                            for axis, groups in (section.get("by_category") or {}).items()})
    return row


def build_results(meta: dict[str, Any], outcomes: Sequence[dict], ns, world: int) -> dict[str, Any]:
    return {"suite": meta.get("suite"), "suite_file": meta.get("file"), "paper_source": meta.get("source"),
            "model": ns.model, "data_root": ns.data_root, "processes": world,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "environment": environment(),
            "benchmarks": [benchmark_row(o) for o in outcomes]}


def _num(v: Optional[float], signed: bool = False) -> str:
    return "–" if v is None else (f"{v:+.1f}" if signed else f"{v:.1f}")


def results_markdown(results: dict[str, Any]) -> str:
    lines = [f"# Results: suite `{results['suite']}`", "", f"model: `{results['model']}`; "
             f"{results['processes']} process(es); paper numbers: {results.get('paper_source')}", "",
             "| benchmark | metric | this run | VersaVid-R1 (paper) | Δ paper | strongest baseline | Δ baseline "
             "| n | errors |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for b in results["benchmarks"]:
        paper = _num(b["paper"]) + (f" ({b['paper_note']})" if b.get("paper_note") else "")
        if b["status"] != "done":
            state = "not run: " + ("no converted data" if b["status"] == "skipped" else b.get("error", ""))
            lines.append(f"| {b['title']} | {b['metric']} | {state} | {paper} | | {_num(b['baseline'])} | | | |")
            continue
        lines.append(f"| {b['title']} | {b['metric']} | {_num(b['value'])} | {paper} | {_num(b['diff_paper'], True)} "
                     f"| {_num(b['baseline'])} | {_num(b['diff_baseline'], True)} | {b['n']} | {b['n_errors']} |")
    for b in results["benchmarks"]:
        if b["status"] != "done" or not b.get("by_category"):
            continue
        lines += ["", f"## {b['title']} by category", "", "| axis | category | value | n | errors |",
                  "| --- | --- | ---: | ---: | ---: |"]
        for axis, groups in b["by_category"].items():
            for name, m in groups.items():
                lines.append(f"| {axis} | {name} | {_num(m['value'])} | {m['n']} | {m['n_errors']} |")
    done = [b for b in results["benchmarks"] if b["status"] in ("done", "error")]
    if done:
        lines += ["", "## Settings", "", "| benchmark | frames | pixels per frame | new tokens | decoding | scoring |",
                  "| --- | --- | --- | ---: | --- | --- |"]
        for b in done:
            p = b["protocol"]
            frames = (f"{p['video_fps']:g} fps, {p['min_frames']}–{p['max_frames']}" if p["video_fps"]
                      else f"{p['nframes']} uniform")
            decoding = "greedy" if not p["do_sample"] else f"sampled T={p['temperature']}"
            lines.append(f"| {b['title']} | {frames} | {p['min_pixels']}–{p['max_pixels']} | {p['max_new_tokens']} "
                         f"| {decoding} | {b['scoring']} |")
    skipped = [b for b in results["benchmarks"] if b["status"] == "skipped"]
    if skipped:
        lines += ["", "## Not run", ""] + [f"- {b['title']}: no `{b['data']}`; download from {b['how_to_get']} and "
                                            f"convert with `python -m versavid_r1.eval.convert {b['name']}`"
                                            for b in skipped]
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("results.json", json.dumps(results, indent=1, ensure_ascii=False, default=str)),
                       ("results.md", results_markdown(results))):
        tmp = out / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
