"""Benchmark annotation files -> evaluation JSONL rows (scripts/convert_mvbench.py, scripts/convert_dream1k.py).

- **MVBench style** (`convert_mvbench`): a folder of per-task JSON files, each a list of
  `{"video": ..., "question": ..., "candidates": [...], "answer": <text of the right candidate>}` (some
  tasks add `start`/`end` seconds). Each row becomes an mcqa evaluation row (`formats.py`): options =
  candidates, answer = the letter of the right candidate, category = the task (from the file name),
  id = "<task>/<index>", and `start`/`end` become the clip bounds `video_start`/`video_end` (only that
  clip is sampled). Videos are found under `video_dir`: `task_dirs[task]/video` when the task's
  sub-folder is given, otherwise by searching `video_dir` for a file whose path ends with the row's
  `video` (an ambiguous match is an error that asks for the task's sub-folder).
- **DREAM-1K style** (`convert_dream1k`): a JSON list or JSONL of items with an id (`idx`/`id`), the
  reference caption (`description`, `caption`, `response`, or `text.response`), optional `events`
  (also under `extra_info.events`), a subset name (`source` or `dataset`, used as category) and the video
  (`video_file`/`video`; a missing or "<placeholder>" video becomes `<idx>.mp4`). Each item becomes an
  internal caption row; its events travel with it (`events`).

Nothing is dropped silently: `ConversionReport` counts the rows written and lists every row left out or
written with a video that does not exist (the evaluation then records it as an unreadable video), with
the reason.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from versavid_r1.answer import wrap_answer
from versavid_r1.prompts import DREAM1K_CAPTION_QUESTION
from versavid_r1.rewards.mcqa import OPTION_LETTERS
from versavid_r1.tasks import CAPTION

PLACEHOLDERS = ("", "<placeholder>")
VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".gif", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")


@dataclass
class ConversionReport:
    rows: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "<source>: <reason>" of rows left out
    missing_videos: list[str] = field(default_factory=list)  # rows written whose video does not exist

    def add(self, row: dict, where: str, missing: Optional[str], drop_missing: bool) -> None:
        """Keep `row`, noting a missing video; with `drop_missing` such a row is left out instead."""
        if missing is not None:
            if drop_missing:
                self.skipped.append(f"{where}: {missing}")
                return
            self.missing_videos.append(f"{where}: {missing}")
        self.rows.append(row)

    def summary(self) -> str:
        lines = [f"{len(self.rows)} rows written, {len(self.skipped)} left out, "
                 f"{len(self.missing_videos)} written with a missing video"]
        for title, items in (("left out", self.skipped), ("missing video", self.missing_videos)):
            for text in items[:20]:
                lines.append(f"  {title}: {text}")
            if len(items) > 20:
                lines.append(f"  ... and {len(items) - 20} more {title}")
        return "\n".join(lines)


def write_jsonl(rows: Iterable[dict], path: str | os.PathLike) -> Path:
    """Write rows atomically (a temp file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def read_json_or_jsonl(path: str | os.PathLike) -> list[Any]:
    """Items of a `.jsonl` file (one object per line), or of a JSON list (or an object holding one list)."""
    text = Path(path).read_text(encoding="utf-8")
    if Path(path).suffix.lower() != ".jsonl":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # maybe JSONL under another name
        if data is not None:
            if isinstance(data, dict):
                lists = [v for v in data.values() if isinstance(v, list)]
                if len(lists) != 1:
                    raise ValueError(f"{path}: expected a list of items (or an object holding one list)")
                data = lists[0]
            if not isinstance(data, list):
                raise ValueError(f"{path}: expected a list of items, got {type(data).__name__}")
            return data
    items = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {lineno} is not valid JSON: {exc.msg}") from exc
    return items


class VideoIndex:
    """Files under a folder, found by the tail of their path ("clip.mp4", "sub/clip.mp4").

    Benchmarks are unpacked in many layouts; searching by path tail avoids hard-coding each one.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self._by_name: dict[str, list[Path]] = defaultdict(list)
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                self._by_name[name].append(Path(dirpath) / name)

    def find(self, video: str) -> list[Path]:
        tail = Path(video)
        return [p for p in self._by_name.get(tail.name, []) if p.parts[-len(tail.parts):] == tail.parts]


def task_category(stem: str) -> str:
    """'action_sequence' -> 'Action Sequence'."""
    return " ".join(w.capitalize() for w in stem.replace("-", "_").split("_") if w)


# ------------------------------------------------------------------ MVBench -----------------------------
def _resolve_mvbench_video(video: str, video_dir: Path, task_dir: Optional[str], index: Optional[VideoIndex]):
    """(path, problem): the video's path, and why it could not be found uniquely (or None)."""
    if task_dir is not None:
        path = video_dir / task_dir / video
        return path, (None if path.is_file() else f"{path} does not exist")
    direct = video_dir / video
    if direct.is_file():
        return direct, None
    found = index.find(video) if index is not None else []
    if len(found) == 1:
        return found[0], None
    if len(found) > 1:
        raise ValueError(
            f"video {video!r} matches {len(found)} files under {video_dir} ({', '.join(map(str, found[:3]))}...); "
            "name the task's sub-folder with --task_dir TASK=SUBDIR"
        )
    hint = " (a folder of frames: render it to a video file first)" if any(
        p.is_dir() for p in (direct, video_dir / Path(video).name)) else ""
    return direct, f"{video} not found under {video_dir}{hint}"


def convert_mvbench(
    json_files: Iterable[str | os.PathLike],
    video_dir: str | os.PathLike,
    task_dirs: Optional[dict[str, str]] = None,
    drop_missing: bool = False,
) -> ConversionReport:
    """MVBench-style task files -> mcqa evaluation rows (see the module docstring)."""
    video_dir = Path(video_dir).resolve()
    task_dirs = dict(task_dirs or {})
    report = ConversionReport()
    index: Optional[VideoIndex] = None
    for json_file in sorted(Path(p) for p in json_files):
        task = json_file.stem
        if task not in task_dirs and index is None:
            index = VideoIndex(video_dir)
        for k, item in enumerate(read_json_or_jsonl(json_file)):
            where = f"{json_file.name}[{k}]"
            try:
                row = _mvbench_row(item, task, k)
            except ValueError as exc:
                report.skipped.append(f"{where}: {exc}")
                continue
            path, problem = _resolve_mvbench_video(str(item["video"]), video_dir, task_dirs.get(task), index)
            row["video"] = str(path)
            report.add(row, where, problem, drop_missing)
    return report


def _mvbench_row(item: Any, task: str, k: int) -> dict:
    if not isinstance(item, dict):
        raise ValueError(f"expected an object, got {type(item).__name__}")
    for key in ("video", "question", "candidates", "answer"):
        if item.get(key) in (None, "", []):
            raise ValueError(f"missing {key!r}")
    candidates = [str(c).strip() for c in item["candidates"]]
    if not 2 <= len(candidates) <= len(OPTION_LETTERS):
        raise ValueError(f"{len(candidates)} candidates (2 to {len(OPTION_LETTERS)} supported)")
    answer = str(item["answer"]).strip()
    if candidates.count(answer) != 1:
        raise ValueError(f"answer {answer!r} is not exactly one of the candidates {candidates}")
    row = {
        "id": f"{task}/{k}",
        "video": item["video"],
        "question": str(item["question"]).strip(),
        "options": candidates,
        "answer": OPTION_LETTERS[candidates.index(answer)],
        "category": task_category(task),
    }
    # Clip bounds of some tasks (seconds): the loader samples only that clip (versavid_r1.data.schema).
    for key, out in (("start", "video_start"), ("end", "video_end")):
        value = item.get(key)
        if value is None:
            continue
        try:
            if isinstance(value, bool):
                raise TypeError(key)
            row[out] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key!r} must be a number of seconds, got {value!r}") from None
    return row


# ------------------------------------------------------------------ DREAM-1K ----------------------------
def _first(item: dict, *paths: str) -> Any:
    for dotted in paths:
        value: Any = item
        for key in dotted.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value not in (None, ""):
            return value
    return None


def _dream_video(item: dict, idx: str, video_dir: Path) -> Path:
    given = _first(item, "video_file", "video", "video_path")
    if isinstance(given, dict):
        given = _first(given, "video_file", "path")
    if isinstance(given, str) and given.strip() not in PLACEHOLDERS:
        for candidate in (video_dir / given, video_dir / Path(given).name):
            if candidate.is_file():
                return candidate
        return video_dir / Path(given).name
    for suffix in VIDEO_SUFFIXES:
        candidate = video_dir / f"{idx}{suffix}"
        if candidate.is_file():
            return candidate
    return video_dir / f"{idx}.mp4"


def convert_dream1k(
    annotation: str | os.PathLike,
    video_dir: str | os.PathLike,
    question: Optional[str] = None,
    drop_missing: bool = False,
) -> ConversionReport:
    """DREAM-1K-style caption annotations -> internal caption rows (see the module docstring)."""
    video_dir = Path(video_dir).resolve()
    report = ConversionReport()
    for k, item in enumerate(read_json_or_jsonl(annotation)):
        where = f"{Path(annotation).name}[{k}]"
        if not isinstance(item, dict):
            report.skipped.append(f"{where}: expected an object, got {type(item).__name__}")
            continue
        idx = _first(item, "idx", "id", "vid")
        caption = _first(item, "description", "caption", "response", "text.response")
        if idx is None or not isinstance(caption, str) or not caption.strip():
            report.skipped.append(f"{where}: needs an id (idx/id) and a reference caption (description/response)")
            continue
        events = _first(item, "events", "extra_info.events")
        if events is not None and not (isinstance(events, list) and all(isinstance(e, str) and e.strip()
                                                                        for e in events)):
            report.skipped.append(f"{where}: events must be a list of non-empty texts")
            continue
        prompt = question or str(_first(item, "text.prompt", "prompt") or DREAM1K_CAPTION_QUESTION)
        prompt = prompt.replace("<video>", "").strip() or DREAM1K_CAPTION_QUESTION
        row: dict[str, Any] = {
            "id": f"dream1k/{idx}",
            "problem": prompt,
            "solution": wrap_answer(caption.strip()),
            "problem_type": CAPTION,
            "video": str(_dream_video(item, str(idx), video_dir)),
        }
        if events:
            row["events"] = [e.strip() for e in events]
        category = _first(item, "source", "dataset")
        if category is not None:
            row["category"] = str(category).split("/")[-1]
        missing = None if Path(row["video"]).is_file() else f"{row['video']} does not exist"
        report.add(row, where, missing, drop_missing)
    return report
