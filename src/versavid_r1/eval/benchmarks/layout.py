"""Shared pieces of the benchmark converters: checking a download root, finding a row's video, reading
CSV/JSON annotation files, and building one evaluation row.

Every converter reads a benchmark's files exactly as the benchmark releases them (its module docstring
names the files and fields and where that layout is documented) and writes rows of the evaluation's mcqa
format (`versavid_r1.eval.formats`) or its internal format, each with:

- `benchmark`: the benchmark's name (its official scoring, `versavid_r1.eval.benchmarks`);
- `categories`: the benchmark's own categories, one value per axis (`{"duration": "short", ...}`), and
  `category` = the value of the first axis (the per-run summary's breakdown);
- `bench`: what the official scoring needs beyond the row (option texts, a group id, ...).

A wrong root is one `LayoutError` naming what was expected there; a missing video is listed in the
`ConversionReport` and the row is kept (the evaluation records it as an unreadable video).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from ..converters import VIDEO_SUFFIXES, ConversionReport

LETTERS = "ABCDEFG"


class LayoutError(ValueError):
    """The given folder does not hold the benchmark's files; the message says what was expected."""


def require_file(root: Path, candidates: Sequence[str], benchmark: str) -> Path:
    """The first of `candidates` (paths relative to `root`) that exists, else a LayoutError naming them."""
    if not root.is_dir():
        raise LayoutError(f"{benchmark}: {root} is not a folder (expected the benchmark's download root)")
    for rel in candidates:
        if (root / rel).is_file():
            return root / rel
    raise LayoutError(f"{benchmark}: {root} holds none of {', '.join(candidates)} (is this the {benchmark} "
                      "download root?)")


def require_dir(root: Path, candidates: Sequence[str], benchmark: str, what: str = "videos") -> Path:
    """The first existing folder of `candidates` under `root`, else a LayoutError naming them."""
    for rel in candidates:
        if (root / rel).is_dir():
            return root / rel
    raise LayoutError(f"{benchmark}: no {what} folder under {root} (expected {' or '.join(candidates)}; "
                      "pass --video_dir if the videos are elsewhere)")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LayoutError(f"{path}: cannot read it as JSON ({exc})") from None


def read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a CSV with a header; a missing column is a LayoutError naming it."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise LayoutError(f"{path}: no column {', '.join(missing)} (columns: {reader.fieldnames})")
        return list(reader)


def video_in(folder: Path, stem_or_name: str) -> tuple[Path, Optional[str]]:
    """(path, why it is missing or None) of a video in `folder`: the name as given, else the same stem with any
    video suffix (benchmarks are re-uploaded with other containers)."""
    given = folder / stem_or_name
    if given.is_file():
        return given, None
    stem = given.name.rsplit(".", 1)[0] if given.suffix.lower() in VIDEO_SUFFIXES else given.name
    for suffix in VIDEO_SUFFIXES + tuple(s.upper() for s in VIDEO_SUFFIXES):
        candidate = given.with_name(stem + suffix)
        if candidate.is_file():
            return candidate, None
    expected = given if given.suffix else given.with_name(stem + ".mp4")
    return expected, f"video {expected} does not exist"


def categories_of(axes: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """{axis: value} with values as strings; axes whose value is missing are left out."""
    return {axis: str(value) for axis, value in axes if value not in (None, "")}


def mcqa_row(
    benchmark: str, rid: str, video: Path, question: str, options: Sequence[str], answer: int,
    categories: dict[str, str], **bench: Any,
) -> dict[str, Any]:
    """One mcqa evaluation row (option texts, answer index) with the benchmark's fields."""
    if not 2 <= len(options) <= len(LETTERS):
        raise ValueError(f"{len(options)} options (2 to {len(LETTERS)} supported)")
    if not 0 <= answer < len(options):
        raise ValueError(f"answer index {answer} but {len(options)} options")
    row: dict[str, Any] = {
        "id": f"{benchmark}/{rid}", "video": str(video), "question": str(question).strip(),
        "options": [str(o).strip() for o in options], "answer": LETTERS[answer], "benchmark": benchmark,
        "categories": categories,
    }
    if categories:
        row["category"] = next(iter(categories.values()))
    row["bench"] = {"options": row["options"], **bench}
    return row


def add_row(report: ConversionReport, where: str, build, video_problem: Optional[str], drop_missing: bool) -> None:
    """Build a row (a ValueError skips it, with the reason) and add it, noting a missing video."""
    try:
        row = build()
    except (ValueError, KeyError, TypeError) as exc:
        report.skipped.append(f"{where}: {exc}")
        return
    report.add(row, where, video_problem, drop_missing)



def convert_items(
    items: Iterable[Any], source: str, videos: Path, video_name: Callable[[dict], str],
    build: Callable[[dict, Path], dict], drop_missing: bool,
) -> ConversionReport:
    """The common loop of the converters: each annotation item's video looked up in `videos` by `video_name`
    and its row built by `build` (a bad item is left out with the reason, a missing video listed)."""
    report = ConversionReport()
    for k, item in enumerate(items):
        try:
            name = video_name(item)
        except (KeyError, TypeError, AttributeError):
            name = ""
        path, missing = video_in(videos, name)
        add_row(report, f"{source}[{k}]", lambda item=item, path=path: build(item, path), missing, drop_missing)
    return report
