"""Entry points of scripts/convert_mvbench.py and scripts/convert_dream1k.py (flags -> converters)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .converters import ConversionReport, convert_dream1k, convert_mvbench, write_jsonl


def _finish(report: ConversionReport, out: str) -> int:
    print(report.summary())
    if not report.rows:
        print("error: no rows converted", file=sys.stderr)
        return 1
    print(f"wrote {write_jsonl(report.rows, out)}")
    return 0


def _task_dirs(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        task, sep, sub = pair.partition("=")
        if not sep or not task or not sub:
            raise SystemExit(f"--task_dir expects TASK=SUBDIR (e.g. action_sequence=star/Charades_v1_480), "
                             f"got {pair!r}")
        out[Path(task).stem] = sub
    return out


def mvbench_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        description="Convert MVBench-style task files (question, candidates, answer text, video) into the "
                    "evaluation's mcqa rows (video, question, options, answer letter, category, id).")
    p.add_argument("--json", nargs="+", required=True,
                   help="task JSON files, or a folder holding them (e.g. MVBench/json)")
    p.add_argument("--video_dir", required=True, help="folder the videos were unpacked into (e.g. MVBench/video)")
    p.add_argument("--task_dir", action="append", default=[], metavar="TASK=SUBDIR",
                   help="sub-folder of a task's videos under --video_dir (default: search by file name)")
    p.add_argument("--drop_missing", action="store_true",
                   help="leave out rows whose video is missing (default: keep them; the evaluation counts them "
                        "as unreadable)")
    p.add_argument("--out", required=True, help="output JSONL")
    a = p.parse_args(argv)
    files = []
    for given in a.json:
        path = Path(given)
        files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    if not files:
        print(f"error: no JSON files in {a.json}", file=sys.stderr)
        return 1
    try:
        report = convert_mvbench(files, a.video_dir, _task_dirs(a.task_dir), drop_missing=a.drop_missing)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _finish(report, a.out)


def dream1k_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        description="Convert DREAM-1K-style caption annotations (metadata.json or a JSONL) into the evaluation's "
                    "caption rows (problem, solution, problem_type caption, video, events, category).")
    p.add_argument("--annotations", required=True, help="DREAM-1K metadata.json or JSONL")
    p.add_argument("--video_dir", required=True, help="folder holding the videos")
    p.add_argument("--question", default=None,
                   help="prompt for every row (default: the annotation's own prompt, else "
                        "'Describe the video in detail.')")
    p.add_argument("--drop_missing", action="store_true", help="leave out rows whose video is missing")
    p.add_argument("--out", required=True, help="output JSONL")
    a = p.parse_args(argv)
    try:
        report = convert_dream1k(a.annotations, a.video_dir, question=a.question, drop_missing=a.drop_missing)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _finish(report, a.out)
