"""Benchmark annotation files -> evaluation JSONL rows (scripts/convert_mvbench.py, scripts/convert_dream1k.py).

- **MVBench** (`versavid_r1.eval.mvbench.convert_mvbench`, which knows the benchmark's layout): uses the
  helpers here (`ConversionReport`, `VideoIndex`, `read_json_or_jsonl`, `task_category`).
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
from versavid_r1.tasks import CAPTION

PLACEHOLDERS = ("", "<placeholder>")
VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".gif", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")


@dataclass
class ConversionReport:
    rows: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "<source>: <reason>" of rows left out
    missing_videos: list[str] = field(default_factory=list)  # rows written whose video does not exist
    notes: list[str] = field(default_factory=list)  # other things the converter did (printed with the summary)

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
                 f"{len(self.missing_videos)} written with a missing video", *self.notes]
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
