"""Entry points of scripts/convert_mvbench.py and scripts/convert_dream1k.py (flags -> converters)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .converters import ConversionReport, convert_dream1k, write_jsonl
from .mvbench import FRAME_FOLDER_FPS, MVBENCH_TASKS, convert_mvbench


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


def add_mvbench_arguments(p: argparse.ArgumentParser) -> None:
    """MVBench's flags (also the suite converter's `mvbench` sub-command)."""
    p.add_argument("--root", default=None,
                   help="the MVBench folder holding json/ and video/ (instead of --json and --video_dir)")
    p.add_argument("--json", nargs="+", default=None,
                   help="task JSON files, or a folder holding them (default: ROOT/json)")
    p.add_argument("--video_dir", default=None, help="folder the video zips were unpacked into (default: ROOT/video)")
    p.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                   help=f"only these tasks (json stems: {', '.join(t.name for t in MVBENCH_TASKS[:3])}, ...)")
    p.add_argument("--task_dir", action="append", default=[], metavar="TASK=SUBDIR",
                   help="the task's video folder under --video_dir, when it is not where MVBench puts it")
    p.add_argument("--frames_dir", default=None,
                   help="where frame folders become videos (default: next to --out, OUT_frames/); kept for reruns")
    p.add_argument("--frame_fps", type=float, default=FRAME_FOLDER_FPS,
                   help=f"rate of the frame folders (MVBench's TVQA frames: {FRAME_FOLDER_FPS:g} fps)")


def convert_mvbench_args(a: argparse.Namespace) -> ConversionReport:
    """The conversion `add_mvbench_arguments`' flags ask for; ValueError names a bad flag or file."""
    json_given = a.json or ([str(Path(a.root) / "json")] if a.root else None)
    video_dir = a.video_dir or (str(Path(a.root) / "video") if a.root else None)
    if not json_given or not video_dir:
        raise ValueError("give --root MVBench, or --json and --video_dir")
    files = []
    for given in json_given:
        path = Path(given)
        if not path.exists():
            raise ValueError(f"MVBench: {path} does not exist (expected the json/ folder of task files, or task files)")
        files.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    if a.tasks:
        unknown = sorted(set(a.tasks) - {f.stem for f in files})
        if unknown:
            raise ValueError(f"no task file for {', '.join(unknown)} in {json_given}")
        files = [f for f in files if f.stem in set(a.tasks)]
    if not files:
        raise ValueError(f"no JSON files in {json_given}")
    out = Path(a.out)
    frames_dir = a.frames_dir or str(out.with_name(out.stem + "_frames"))
    return convert_mvbench(files, video_dir, _task_dirs(a.task_dir), drop_missing=a.drop_missing,
                           frames_dir=frames_dir, frame_fps=a.frame_fps)


def mvbench_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        description="Convert MVBench (its json/ task files and video/ folders, as downloaded and unzipped) into the "
                    "evaluation's mcqa rows (video, question, options, answer letter, category, id). The 20 tasks' "
                    "video folders are known; the frame-folder task (episodic_reasoning) is turned into videos.")
    add_mvbench_arguments(p)
    p.add_argument("--drop_missing", action="store_true",
                   help="leave out rows whose video is missing (default: keep them; the evaluation counts them "
                        "as unreadable)")
    p.add_argument("--out", required=True, help="output JSONL")
    a = p.parse_args(argv)
    try:
        report = convert_mvbench_args(a)
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
