"""The JSONL row schema and its validation, run before anything expensive.

A row (one JSON object per line):

    problem       str, the question shown to the model
    solution      str, the ground truth inside <answer>…</answer>
    problem_type  "MCQA" | "DarkEventInfer" | "MixVidQA" | "caption"
    video         a path (relative paths are resolved against the video root: VideoConfig.video_root,
                  by default the JSONL's folder); for MixVidQA also a list of exactly two clips [a, b]
    mask_span     DarkEventInfer only, optional: [start_s, end_s] in source seconds, blacked out at load
    segment_seconds  MixVidQA only, optional: a number or [min, max] (default VideoConfig.segment_seconds)
    target        MixVidQA only, optional: "a" | "b", the clip the question is about (analysis only)
    events        caption only, optional: list of ground-truth event strings (the caption judge uses them)
    nframes, fps, min_frames, max_frames, min_pixels, max_pixels, total_pixels, resized_height,
    resized_width   optional per-row overrides of VideoConfig (nframes and fps are exclusive)
    video_start, video_end   optional, one video only (not a MixVidQA pair): clip bounds in source
                  seconds; frames are sampled inside them as qwen-vl-utils does (an end past the
                  video's end is clamped to it). A DarkEventInfer mask_span must lie inside them.

Other keys are kept and ignored, so rows in the authors' released format (problem, solution,
problem_type, video with pre-rendered proxy videos) load unchanged. `null` values count as absent.

`validate_file` checks every row and reports every problem with its line number and field;
`load_rows` is the entry point for training: it raises `DataValidationError` listing all problems,
or with `skip_invalid=True` logs each bad row, prints how many were skipped and drops them.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from versavid_r1.answer import ANSWER_CLOSE, ANSWER_OPEN, answer_tag_problem, extract_answer
from versavid_r1.data.config import (
    CLIP_BOUND_KEYS,
    ROW_VIDEO_OVERRIDES,
    VideoConfig,
    segment_range,
)
from versavid_r1.data.jsonl import count_lines, iter_jsonl  # noqa: F401  (iter_jsonl re-exported)
from versavid_r1.data.limits import RowLimits, judge_field_errors, override_bound_errors, text_errors
from versavid_r1.data.rows import (  # noqa: F401  (re-exported: the schema's public names)
    ROW_SOURCE_KEY,
    VIDEO_PATHS_KEY,
    PathLike,
    normalize_row,
    present,
    resolve_video_paths,
    row_video_list,
    sampling_options,
)
from versavid_r1.data.video_checks import InfoCache, check_row_videos
from versavid_r1.tasks import CAPTION, DARK_EVENT_INFER, MCQA, MIX_VID_QA, PROBLEM_TYPES

logger = logging.getLogger(__name__)

REQUIRED_FIELDS: tuple[str, ...] = ("problem", "solution", "problem_type", "video")
_ANSWER_RE = re.compile(re.escape(ANSWER_OPEN) + r"(.*?)" + re.escape(ANSWER_CLOSE), re.DOTALL)
_MCQA_LETTER_RE = re.compile(r"^\(?\s*([A-Ga-g])(?:[\s.,:;)\]]|$)")



@dataclass(frozen=True)
class RowIssue:
    """One problem of one row: `line` is 1-based in the JSONL file, `field` the offending key."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass
class ValidationReport:
    path: str
    rows: list[dict] = field(default_factory=list)  # the valid rows (normalised, see normalize_row)
    lines: list[int] = field(default_factory=list)  # line number of each valid row
    errors: list[RowIssue] = field(default_factory=list)
    warnings: list[RowIssue] = field(default_factory=list)
    n_rows: int = 0  # non-blank lines read

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def invalid_lines(self) -> list[int]:
        return sorted({e.line for e in self.errors})

    @property
    def n_invalid(self) -> int:
        return len(self.invalid_lines)

    def add_errors(self, issues: Sequence[RowIssue]) -> None:
        """Record errors found elsewhere (e.g. by another process) and drop those rows from `rows`."""
        self.errors.extend(issues)
        self.errors.sort(key=lambda e: e.line)
        bad = {e.line for e in issues}
        kept = [(r, n) for r, n in zip(self.rows, self.lines) if n not in bad]
        self.rows, self.lines = [r for r, _ in kept], [n for _, n in kept]

    def summary(self) -> str:
        return (
            f"{self.path}: {self.n_rows} rows, {len(self.rows)} valid, {self.n_invalid} invalid "
            f"({len(self.errors)} errors, {len(self.warnings)} warnings)"
        )

    def format(self, limit: Optional[int] = None) -> str:
        items = [f"error: {e}" for e in self.errors] + [f"warning: {w}" for w in self.warnings]
        if limit is not None and len(items) > limit:
            items = items[:limit] + [f"... and {len(items) - limit} more"]
        return "\n".join([self.summary(), *items])


class DataValidationError(ValueError):
    """Raised by `load_rows` when a data file has invalid rows; `.report` holds every problem."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(
            report.format()
            + "\n(fix the rows, or pass skip_invalid / --skip_invalid to drop them with a log line each)"
        )


# ------------------------------------------------------------------ validation -------------------
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or (isinstance(v, float) and v.is_integer())


def _check_clip_bounds_static(row: dict, video: Any, span: Optional[Sequence[float]], err) -> None:
    """Clip bounds (numbers >= 0 already checked) without opening the video: one video only, start <
    end, and a DarkEventInfer `mask_span` inside them (so the guaranteed black frame is sampled)."""
    given = [k for k in CLIP_BOUND_KEYS if present(row, k)]
    if not given or not all(_is_number(row[k]) and row[k] >= 0 for k in given):
        return  # absent, or already reported as not a number >= 0
    start, end = row.get("video_start"), row.get("video_end")
    if isinstance(video, (list, tuple)):
        err(given[0], "clip bounds apply to a single video; a MixVidQA pair [a, b] is interleaved whole")
    elif start is not None and end is not None and start >= end:
        err("video_start", f"clip bounds are reversed or empty: video_start {start} >= video_end {end}")
    elif span is not None and ((start is not None and span[0] < start) or (end is not None and span[1] > end)):
        err("mask_span", f"span {list(span)} is not inside the clip bounds [{start}, {end}] s")


def validate_row(
    row: Any,
    line: int,
    video_root: Optional[PathLike],
    cfg: VideoConfig,
    infos: Optional[InfoCache] = None,
    limits: Optional[RowLimits] = None,
    decode: bool = False,
) -> tuple[list[RowIssue], list[RowIssue]]:
    """Every problem of one parsed row as `(errors, warnings)`. `infos=None` skips opening videos;
    `decode` also loads the row's video as training will (`video_checks`). Never raises: a check that
    fails unexpectedly is reported as the row's error, naming the exception."""
    try:
        return _validate_row(row, line, video_root, cfg, infos, limits or RowLimits(), decode)
    except Exception as exc:  # noqa: BLE001 - one row's surprise must not stop the validation of the others
        logger.debug("validation of line %d failed", line, exc_info=True)
        return [RowIssue(line, "row", f"validation failed unexpectedly: {type(exc).__name__}: {exc}")], []


def _validate_row(
    row: Any,
    line: int,
    video_root: Optional[PathLike],
    cfg: VideoConfig,
    infos: Optional[InfoCache],
    limits: RowLimits,
    decode: bool,
) -> tuple[list[RowIssue], list[RowIssue]]:
    errors: list[RowIssue] = []
    warnings: list[RowIssue] = []

    def err(fld: str, msg: str) -> None:
        errors.append(RowIssue(line, fld, msg))

    def warn(fld: str, msg: str) -> None:
        warnings.append(RowIssue(line, fld, msg))

    if not isinstance(row, dict):
        err("row", f"expected a JSON object, got {type(row).__name__}")
        return errors, warnings
    for fld, msg in text_errors(row):
        err(fld, msg)

    for key in REQUIRED_FIELDS:
        if row.get(key) is None:
            err(key, "missing field")

    problem = row.get("problem")
    if problem is not None and (not isinstance(problem, str) or not problem.strip()):
        err("problem", "must be a non-empty string")

    ptype = row.get("problem_type")
    if ptype is not None and ptype not in PROBLEM_TYPES:
        err("problem_type", f"unknown problem_type {ptype!r} (expected one of {', '.join(PROBLEM_TYPES)})")
        ptype = None
    for fld, msg in judge_field_errors(row, limits):
        err(fld, msg)

    solution = row.get("solution")
    if solution is not None:
        if not isinstance(solution, str):
            err("solution", "must be a string")
        elif not _ANSWER_RE.search(solution):
            err("solution", "the ground truth must be inside <answer>…</answer>")
        elif answer_tag_problem(solution) is not None:
            err("solution", str(answer_tag_problem(solution)))
        elif not extract_answer(solution):
            err("solution", "the <answer>…</answer> is empty")
        elif ptype == MCQA and not _MCQA_LETTER_RE.match(extract_answer(solution)):
            warn("solution", "MCQA answer does not start with an option letter A-G (scored by letter)")

    # --- video ---
    video = row.get("video")
    video_ok = False
    if video is not None:
        if isinstance(video, str):
            video_ok = bool(video.strip())
            if not video_ok:
                err("video", "empty path")
        elif isinstance(video, (list, tuple)):
            if ptype is not None and ptype != MIX_VID_QA:
                err("video", f"a list of clips is only valid for MixVidQA rows, not {ptype}")
            elif len(video) != 2:
                err("video", f"MixVidQA takes exactly two clips [a, b], got {len(video)}")
            elif not all(isinstance(v, str) and v.strip() for v in video):
                err("video", "both clips must be non-empty path strings")
            else:
                video_ok = True
        else:
            err("video", f"must be a path or, for MixVidQA, a list of two paths; got {type(video).__name__}")

    # --- type-specific keys ---
    span = row.get("mask_span")
    span_ok = False
    if span is not None:
        if ptype is not None and ptype != DARK_EVENT_INFER:
            err("mask_span", f"only DarkEventInfer rows are masked; this row is {ptype}")
        elif not (isinstance(span, (list, tuple)) and len(span) == 2 and all(_is_number(v) for v in span)):
            err("mask_span", f"must be [start_s, end_s] (two numbers), got {span!r}")
        elif span[0] < 0:
            err("mask_span", f"starts before 0 s: {list(span)}")
        elif span[0] == span[1]:
            err("mask_span", f"span is empty: {list(span)}")
        elif span[0] > span[1]:
            err("mask_span", f"span is reversed (start > end): {list(span)}")
        else:
            span_ok = True

    seg = row.get("segment_seconds")
    if seg is not None:
        if ptype is not None and ptype != MIX_VID_QA:
            err("segment_seconds", f"only MixVidQA rows are interleaved; this row is {ptype}")
        else:
            try:
                segment_range(seg)
            except ValueError as exc:
                err("segment_seconds", str(exc))
            else:
                if isinstance(video, str):
                    warn("segment_seconds", "ignored: the video is a single (pre-rendered) file")

    target = row.get("target")
    if target is not None:
        if ptype is not None and ptype != MIX_VID_QA:
            err("target", f"only MixVidQA rows have a target clip; this row is {ptype}")
        elif target not in ("a", "b"):
            err("target", f"must be 'a' or 'b', got {target!r}")

    events = row.get("events")
    if events is not None:
        if not (isinstance(events, list) and all(isinstance(e, str) and e.strip() for e in events)):
            err("events", "must be a list of non-empty strings")
        elif ptype is not None and ptype != CAPTION:
            warn("events", f"ignored: events are used by caption rows only, this row is {ptype}")

    # --- per-row overrides ---
    n_before = len(errors)
    if present(row, "nframes") and present(row, "fps"):
        err("nframes", "set either nframes or fps, not both")
    for key in ROW_VIDEO_OVERRIDES:
        if not present(row, key):
            continue
        v = row[key]
        if key in CLIP_BOUND_KEYS:
            if not (_is_number(v) and v >= 0):
                err(key, f"must be a number of seconds >= 0, got {v!r}")
        elif key == "fps":
            if not (_is_number(v) and v > 0):
                err(key, f"must be a number > 0, got {v!r}")
        elif not (_is_int(v) and v >= (2 if key == "nframes" else 1)):
            err(key, f"must be an integer >= {2 if key == 'nframes' else 1}, got {v!r}")
    if _is_int(row.get("min_pixels")) and _is_int(row.get("max_pixels")) and row["min_pixels"] > row["max_pixels"]:
        err("min_pixels", "min_pixels > max_pixels")
    _check_clip_bounds_static(row, video, span if span_ok else None, err)
    if len(errors) == n_before:  # well-typed: now within the config's budget
        for fld, msg in override_bound_errors(row, cfg):
            err(fld, msg)
    overrides_ok = len(errors) == n_before

    if infos is not None and video_ok:
        check_row_videos(row, video_root, cfg, infos, err, span=span if span_ok else None,
                         overrides_ok=overrides_ok, limits=limits, decode=decode and not errors)
    return errors, warnings


def validate_file(
    path: PathLike,
    video_root: Optional[PathLike] = None,
    skip_invalid: bool = False,
    cfg: Optional[VideoConfig] = None,
    check_videos: bool = True,
    *,
    limits: Optional[RowLimits] = None,
    decode: bool = True,
    decode_share: Optional[tuple[int, int]] = None,
    workers: int = 0,
    progress: bool = False,
) -> ValidationReport:
    """Validate every row of a JSONL file. Relative videos resolve against `video_root`, else
    `cfg.video_root`, else the file's folder. The report's `rows` are the valid rows, normalised
    (`normalize_row`) and tagged with their `file:line` (`ROW_SOURCE_KEY`). With `skip_invalid`, every
    invalid row is logged as it is skipped.

    `check_videos=False` checks the rows alone; otherwise every video is opened, and with `decode` each
    row is loaded as training will (`video_checks`); `decode_share=(k, n)` restricts that to the rows
    whose 0-based position i has i % n == k (n processes each decoding a share). `workers` > 1
    validates in that many processes (`parallel.py`); `progress` shows a progress bar on stderr.
    Never raises on the file's content: every problem is a `RowIssue` (line 0: the file itself)."""
    cfg = cfg or VideoConfig()
    limits = limits or RowLimits()
    path = Path(path)
    root = Path(video_root or cfg.video_root or path.parent.resolve())
    report = ValidationReport(path=str(path))
    if not path.is_file():
        what = "a broken symlink or a symlink loop" if path.is_symlink() else "not found"
        report.errors.append(RowIssue(0, "file", f"data file {what}: {path}"))
        return report
    from versavid_r1.data.parallel import RowCheck, validated_rows

    check = RowCheck(str(root), cfg, limits, check_videos, decode, decode_share)
    try:
        results = validated_rows(iter_jsonl(path), check, workers)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=count_lines(path), unit="row", desc=f"validating {path.name}",
                           mininterval=1.0)
        for lineno, errors, warnings, row in results:
            report.n_rows += 1
            report.errors.extend(errors)
            report.warnings.extend(warnings)
            if errors:
                if skip_invalid:
                    logger.warning("skipping invalid row: %s", "; ".join(str(e) for e in errors))
                continue
            row[ROW_SOURCE_KEY] = f"{path}:{lineno}"
            report.rows.append(row)
            report.lines.append(lineno)
    except OSError as exc:  # the file itself (permissions, a vanished mount), not a row
        report.errors.append(RowIssue(0, "file", f"cannot read {path}: {type(exc).__name__}: {exc}"))
        return report
    if report.n_rows == 0:
        report.errors.append(RowIssue(0, "file", f"no rows in {path}"))
    return report


def rows_of_report(report: ValidationReport, skip_invalid: bool) -> list[dict]:
    """The valid rows of a finished report, or `DataValidationError` (see `load_rows`)."""
    for w in report.warnings:
        logger.warning("%s: %s", report.path, w)
    if report.errors:
        file_errors = [e for e in report.errors if e.line == 0]
        if not skip_invalid or file_errors or not report.rows:
            raise DataValidationError(report)
        print(f"[data] {report.path}: skipped {report.n_invalid} invalid rows of {report.n_rows}", flush=True)
    return report.rows


def load_rows(
    path: PathLike,
    cfg: Optional[VideoConfig] = None,
    skip_invalid: bool = False,
    limits: Optional[RowLimits] = None,
    decode: bool = True,
) -> list[dict]:
    """Validated, normalised rows of a JSONL file: call this before loading any model.

    Raises `DataValidationError` listing every problem, unless `skip_invalid`: then each invalid row
    is logged, the number skipped is printed, and the valid rows are returned (an error if none)."""
    cfg = cfg or VideoConfig()
    return rows_of_report(validate_file(path, cfg=cfg, skip_invalid=skip_invalid, limits=limits, decode=decode),
                          skip_invalid)


__all__: Sequence[str] = (
    "RowIssue",
    "ValidationReport",
    "DataValidationError",
    "validate_row",
    "validate_file",
    "rows_of_report",
    "load_rows",
    "iter_jsonl",
    "ROW_SOURCE_KEY",
    "normalize_row",
    "resolve_video_paths",
    "row_video_list",
    "sampling_options",
    "VIDEO_PATHS_KEY",
)
