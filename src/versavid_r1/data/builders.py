"""Building proxy-task rows from real annotated datasets (no video is re-encoded).

DarkEventInfer from COIN-style event annotations: for each video, pick an annotated event that has
context on both sides (other annotated events before and after it, `min_context` seconds of video
before and after, no other event overlapping it) and whose length is within `[min_span, max_span]`;
the row masks that span at load time and the event's caption is the ground truth. The pick is seeded
per video (`random.Random(f"{seed}:{video_id}")`), so adding videos does not change earlier picks.

Accepted annotation files:
- the COIN release (`COIN.json`): `{"database": {vid: {"duration": s, "subset": ...,
  "annotation": [{"segment": [start, end], "label": text}, ...]}}}`;
- a JSON list or JSONL of `{"video_id", "duration", "segments": [{"start", "end", "caption"}]}`
  (`"segment": [s, e]` and `"label"` / `"sentence"` are accepted too; an optional `"video"` gives the
  path instead of `video_template`).

MixVidQA from clip pairs with QA (JSON list or JSONL): `{"clip_a", "clip_b", "question", "answer",
"target": "a"|"b"}` with optional `segment_seconds` and `id`. `shuffle_order` swaps a and b for a
seeded half of the pairs (and the target with them) so the target is not always the same clip.
"""
from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from versavid_r1.answer import strip_answer_tags, wrap_answer
from versavid_r1.data.config import segment_range
from versavid_r1.prompts import DEI_QUESTION
from versavid_r1.tasks import DARK_EVENT_INFER, MIX_VID_QA



class BuildError(ValueError):
    """Bad input records; the message lists each with its line (JSONL) or item (JSON) number."""


@dataclass
class EventSegment:
    start: float
    end: float
    caption: str


@dataclass
class VideoEvents:
    video_id: str
    duration: float
    segments: list[EventSegment]
    video: Optional[str] = None
    subset: Optional[str] = None


@dataclass
class BuildStats:
    inputs: int = 0
    rows: int = 0
    skipped: Counter = field(default_factory=Counter)
    # DarkEventInfer with the videos at hand: videos whose real duration was read / that were absent, and one
    # line per annotated event that does not fit inside its real video (those are never masked).
    checked: int = 0
    unchecked: int = 0
    unfit: list[str] = field(default_factory=list)

    def summary(self) -> str:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())) or "none"
        return f"{self.inputs} inputs -> {self.rows} rows (skipped: {skipped})"


@dataclass(frozen=True)
class RealDuration:
    """A video's duration as the loader sees it (frames / fps), and the slack of half a frame that the data
    validation allows at its end (`versavid_r1.data.schema`)."""

    seconds: float
    fps: float

    @property
    def tolerance(self) -> float:
        return 0.5 / self.fps


# ------------------------------------------------------------------ reading ----------------------
def read_records(path: str | Path) -> list[tuple[str, Any]]:
    """`(where, record)` pairs from a JSONL file (`line N`) or a JSON file (list: `item N`; dict: key)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if path.suffix == ".jsonl" or not stripped.startswith(("[", "{")) or _looks_like_jsonl(stripped):
        out, errors = [], []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append((f"line {lineno}", json.loads(line)))
            except json.JSONDecodeError as exc:
                errors.append(f"{path}: line {lineno}: invalid JSON: {exc.msg}")
        if errors:
            raise BuildError("\n".join(errors))
        return out
    data = json.loads(text)
    if isinstance(data, list):
        return [(f"item {k + 1}", r) for k, r in enumerate(data)]
    if isinstance(data, dict):
        return [(str(k), v) for k, v in data.items()]
    raise BuildError(f"{path}: expected a JSON list or object")


def _looks_like_jsonl(text: str) -> bool:
    first = text.split("\n", 1)[0].strip()
    if not first.startswith("{"):
        return False
    try:
        json.loads(first)
    except json.JSONDecodeError:
        return False
    return "\n" in text.strip()


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ValueError(f"not a number: {v!r}")
    x = float(v)
    if not math.isfinite(x):
        raise ValueError(f"not a finite number: {v!r}")
    return x


def _segment(raw: dict) -> EventSegment:
    if "segment" in raw:
        start, end = raw["segment"]
    else:
        start, end = raw["start"], raw["end"]
    caption = raw.get("caption", raw.get("label", raw.get("sentence")))
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError("segment without a caption / label")
    caption = strip_answer_tags(caption)  # a caption already in <answer> tags is wrapped once, not twice
    if not caption:
        raise ValueError("segment with an empty caption inside <answer> tags")
    return EventSegment(_num(start), _num(end), caption)


def load_event_annotations(path: str | Path) -> list[VideoEvents]:
    """Video event annotations from a COIN release file or the simple JSON/JSONL form."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    out: list[VideoEvents] = []
    errors: list[str] = []
    if text.lstrip().startswith("{") and not _looks_like_jsonl(text.lstrip()):
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("database"), dict):  # COIN release
            for vid, item in data["database"].items():
                try:
                    out.append(VideoEvents(
                        video_id=str(vid),
                        duration=_num(item["duration"]),
                        segments=[_segment(a) for a in item.get("annotation", [])],
                        subset=item.get("subset"),
                    ))
                except (KeyError, TypeError, ValueError) as exc:
                    errors.append(f"{path}: video {vid}: {type(exc).__name__}: {exc}")
            if errors:
                raise BuildError("\n".join(errors))
            return out
    for where, rec in read_records(path):
        try:
            if not isinstance(rec, dict):
                raise TypeError("expected an object")
            out.append(VideoEvents(
                video_id=str(rec["video_id"]),
                duration=_num(rec["duration"]),
                segments=[_segment(s) for s in rec.get("segments", rec.get("annotation", []))],
                video=rec.get("video"),
                subset=rec.get("subset"),
            ))
        except (KeyError, TypeError, ValueError) as exc:
            errors.append(f"{path}: {where}: {type(exc).__name__}: {exc}")
    if errors:
        raise BuildError("\n".join(errors))
    return out


# ------------------------------------------------------------------ DarkEventInfer ---------------
PAST_REAL_END = "event past the end of the real video"


def _past_real_end(s: EventSegment, real: Optional[RealDuration]) -> bool:
    return real is not None and 0 <= s.start < s.end and s.end > real.seconds + real.tolerance
def dei_candidates(
    video: VideoEvents,
    min_span: float = 1.0,
    max_span: float = 10.0,
    min_context: float = 1.0,
    require_neighbors: bool = True,
    real: Optional[RealDuration] = None,
) -> tuple[list[EventSegment], Counter]:
    """The events of a video that may be masked, and why the others may not. With `real` (the video file's
    own duration) that duration replaces the annotated one, and an event reaching past it is refused."""
    segs = sorted(video.segments, key=lambda s: (s.start, s.end))
    why: Counter = Counter()
    ok: list[EventSegment] = []
    duration = video.duration if real is None else real.seconds
    for k, s in enumerate(segs):
        # Events past the real video's end are not in the video: they give no context either.
        others = [o for o in segs[:k] + segs[k + 1:] if not _past_real_end(o, real)]
        if _past_real_end(s, real):
            why[PAST_REAL_END] += 1
        elif not (0 <= s.start < s.end <= duration + (1e-6 if real is None else real.tolerance)):
            why["span outside the video or reversed"] += 1
        elif not (min_span <= s.end - s.start <= max_span):
            why["span length out of bounds"] += 1
        elif s.start < min_context or duration - s.end < min_context:
            why["too little context before or after"] += 1
        elif any(o.start < s.end and s.start < o.end for o in others):
            why["overlaps another event"] += 1
        elif require_neighbors and not (
            any(o.end <= s.start for o in others) and any(o.start >= s.end for o in others)
        ):
            why["no annotated event before and after"] += 1
        else:
            ok.append(s)
    return ok, why


def build_dei_rows(
    videos: Iterable[VideoEvents],
    *,
    video_template: str = "{video_id}.mp4",
    min_span: float = 1.0,
    max_span: float = 10.0,
    min_context: float = 1.0,
    require_neighbors: bool = True,
    per_video: int = 1,
    seed: int = 42,
    subset: Optional[str] = None,
    question: str = DEI_QUESTION,
    real_duration: Optional[Callable[[str], Optional[RealDuration]]] = None,
) -> tuple[list[dict], BuildStats]:
    """DarkEventInfer rows (at most `per_video` per video, distinct events) and build statistics.

    `real_duration(video path of the row)`: the duration of the video file when it is at hand (None when
    absent). Annotated durations can be wrong (COIN's are rounded, some videos were re-cut), and a span past
    the real end would mask nothing; with the file, its duration decides, and each event that does not fit
    is listed in `stats.unfit` and counted in `stats.skipped` (the video may still give a row from another
    event)."""
    if min_span <= 0 or max_span < min_span:
        raise ValueError("need 0 < min_span <= max_span")
    stats = BuildStats()
    rows: list[dict] = []
    for video in videos:
        if subset is not None and video.subset != subset:
            continue
        stats.inputs += 1
        path = video.video or video_template.format(video_id=video.video_id)
        real = real_duration(path) if real_duration is not None else None
        if real_duration is not None:
            stats.checked += real is not None
            stats.unchecked += real is None
        candidates, why = dei_candidates(video, min_span, max_span, min_context, require_neighbors, real)
        if why[PAST_REAL_END]:
            stats.skipped[PAST_REAL_END] += why[PAST_REAL_END]
            stats.unfit.extend(
                f"{video.video_id} ({path}): event [{s.start:g}, {s.end:g}] s {s.caption!r} ends after the video "
                f"({real.seconds:.3f} s; annotated duration {video.duration:g} s)"
                for s in sorted(video.segments, key=lambda s: s.start) if _past_real_end(s, real)
            )
        if not candidates:
            stats.skipped["videos without a maskable event"] += 1
            continue
        rng = random.Random(f"{seed}:{video.video_id}")
        chosen = rng.sample(candidates, min(per_video, len(candidates)))
        for s in sorted(chosen, key=lambda s: s.start):
            rows.append({
                "id": f"dei-{video.video_id}-{s.start:g}",
                "problem": question,
                "solution": wrap_answer(s.caption),
                "problem_type": DARK_EVENT_INFER,
                "video": path,
                "mask_span": [round(s.start, 3), round(s.end, 3)],
            })
            stats.rows += 1
    return rows, stats


# ------------------------------------------------------------------ MixVidQA ---------------------
MIX_FIELDS = ("clip_a", "clip_b", "question", "answer", "target")


def build_mixvidqa_rows(
    records: Sequence[tuple[str, Any]],
    *,
    clip_template: str = "{clip}",
    segment_seconds: Optional[Any] = None,
    shuffle_order: bool = False,
    seed: int = 42,
) -> tuple[list[dict], BuildStats]:
    """MixVidQA rows from `(where, record)` pairs (see `read_records`). Raises BuildError listing
    every bad record."""
    if segment_seconds is not None:
        segment_range(segment_seconds)
    stats = BuildStats()
    rows: list[dict] = []
    errors: list[str] = []
    for k, (where, rec) in enumerate(records):
        stats.inputs += 1
        if not isinstance(rec, dict):
            errors.append(f"{where}: expected an object")
            continue
        missing = [f for f in MIX_FIELDS if not (isinstance(rec.get(f), str) and rec[f].strip())]
        if missing:
            errors.append(f"{where}: missing or empty field(s): {', '.join(missing)}")
            continue
        if rec["target"] not in ("a", "b"):
            errors.append(f"{where}: target must be 'a' or 'b', got {rec['target']!r}")
            continue
        try:  # an answer already in <answer> tags is wrapped once; nested or repeated tags are refused
            answer = strip_answer_tags(rec["answer"])
        except ValueError as exc:
            errors.append(f"{where}: answer: {exc}")
            continue
        if not answer:
            errors.append(f"{where}: answer: empty inside its <answer> tags")
            continue
        seg = rec.get("segment_seconds", segment_seconds)
        if seg is not None:
            try:
                segment_range(seg)
            except ValueError as exc:
                errors.append(f"{where}: segment_seconds: {exc}")
                continue
        a, b, target = rec["clip_a"], rec["clip_b"], rec["target"]
        if shuffle_order and random.Random(f"{seed}:{a}:{b}:{rec['question']}").random() < 0.5:
            a, b, target = b, a, ("b" if target == "a" else "a")
        row = {
            "id": str(rec.get("id", f"mix-{k:06d}")),
            "problem": rec["question"].strip(),
            "solution": wrap_answer(answer),
            "problem_type": MIX_VID_QA,
            "video": [clip_template.format(clip=a), clip_template.format(clip=b)],
            "target": target,
        }
        if seg is not None:
            row["segment_seconds"] = seg
        rows.append(row)
        stats.rows += 1
    if errors:
        raise BuildError("\n".join(errors))
    return rows, stats


def write_jsonl(rows: Iterable[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
