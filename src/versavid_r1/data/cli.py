"""Command-line entry points behind scripts/validate_data.py, make_demo_data.py,
build_dark_event_infer.py and build_mixvidqa.py (the scripts are thin wrappers around these)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from versavid_r1.data.config import VideoConfig


def _setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.ERROR if quiet else logging.WARNING, format="%(levelname)s %(message)s")


# ------------------------------------------------------------------ validate ---------------------
def validate_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        description="Check every row of a VersaVid-R1 JSONL file (fields, answers, videos, spans, "
        "MixVidQA pairs) and report each problem with its line number. Exit 1 on any error."
    )
    p.add_argument("data", help="JSONL file, one row per line")
    p.add_argument("--video_root", default=None, help="folder for relative video paths (default: the JSONL's folder)")
    p.add_argument("--skip_invalid", action="store_true",
                   help="skip bad rows (each logged), print how many, and exit 0 if any row is valid")
    p.add_argument("--write_clean", default=None, metavar="PATH",
                   help="write the valid rows, as read, to this JSONL (with --skip_invalid)")
    p.add_argument("--nframes", type=int, default=None, help="frames per video to check sampling with (default 16)")
    p.add_argument("--fps", type=float, default=None, help="sample by fps instead of nframes")
    p.add_argument("--no_check_videos", action="store_true", help="do not open the videos (structure only)")
    p.add_argument("--backend", default=None, help="qwen_vl_utils video backend (decord / pyav)")
    args = p.parse_args(argv)
    _setup_logging()

    from versavid_r1.data.schema import VIDEO_PATHS_KEY, validate_file

    kw = {"video_root": args.video_root, "backend": args.backend}
    if args.fps is not None:
        kw["fps"] = args.fps
    if args.nframes is not None:
        kw["nframes"] = args.nframes
    cfg = VideoConfig(**kw)
    t0 = time.perf_counter()
    report = validate_file(args.data, cfg=cfg, skip_invalid=args.skip_invalid, check_videos=not args.no_check_videos)
    where = args.data
    for w in report.warnings:
        print(f"{where}:{w.line}: warning: {w.field}: {w.message}")
    if not args.skip_invalid:
        for e in report.errors:
            print(f"{where}:{e.line}: error: {e.field}: {e.message}")
    print(f"{report.summary()} in {time.perf_counter() - t0:.1f} s")
    if args.skip_invalid:
        print(f"skipped {report.n_invalid} invalid rows of {report.n_rows}")
        if args.write_clean:
            out = Path(args.write_clean)
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "w", encoding="utf-8") as f:
                for row in report.rows:
                    row = {k: v for k, v in row.items() if k != VIDEO_PATHS_KEY}
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            print(f"wrote {len(report.rows)} valid rows to {out}")
        file_errors = [e for e in report.errors if e.line == 0]
        if file_errors or not report.rows:
            for e in file_errors:
                print(f"{where}: error: {e.field}: {e.message}")
            return 1
        return 0
    return 0 if report.ok else 1


# ------------------------------------------------------------------ demo -------------------------
def make_demo_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Write the synthetic demo dataset (H.264 mp4s + JSONL, all four types).")
    p.add_argument("--out", required=True, help="output folder (relocatable: video paths are relative)")
    p.add_argument("--n", type=int, default=32, help="number of rows (types cycle MCQA, DEI, MixVidQA, caption)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from versavid_r1.data.demo import make_demo_dataset

    t0 = time.perf_counter()
    path = make_demo_dataset(args.out, n=args.n, seed=args.seed)
    print(f"{path} ({args.n} rows, seed {args.seed}) ready in {time.perf_counter() - t0:.1f} s")
    return 0


# ------------------------------------------------------------------ builders ---------------------
def _write_built(rows: list, stats, out: str, media: str) -> int:
    """Write built rows and say what to run next; exit 1 when nothing could be built."""
    from versavid_r1.data.builders import write_jsonl

    write_jsonl(rows, out)
    print(f"{out}: {stats.summary()}")
    print(f"next: python scripts/validate_data.py {out} --video_root <folder of the {media}>")
    return 0 if rows else 1


def build_dei_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        description="Build DarkEventInfer rows from COIN-style event annotations (the loader masks the span)."
    )
    p.add_argument("--annotations", required=True, help="COIN.json, or JSON/JSONL of {video_id, duration, segments}")
    p.add_argument("--out", required=True, help="output JSONL")
    p.add_argument("--video_template", default="{video_id}.mp4",
                   help="video path of a video id, relative to the output's video root (default {video_id}.mp4)")
    p.add_argument("--min_span", type=float, default=1.0, help="shortest event to mask, seconds")
    p.add_argument("--max_span", type=float, default=10.0, help="longest event to mask, seconds")
    p.add_argument("--min_context", type=float, default=1.0, help="seconds of video needed before and after")
    p.add_argument("--allow_edge_events", action="store_true",
                   help="also mask events without an annotated event before and after them")
    p.add_argument("--per_video", type=int, default=1, help="rows per video (distinct events)")
    p.add_argument("--subset", default=None, help="only videos of this COIN subset (training / testing)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--video_root", default=None,
                   help="folder the rows' video paths are relative to (default: the output's folder, as in training); "
                        "videos found there are opened and their real duration replaces the annotated one")
    p.add_argument("--backend", default=None, help="video reader for the duration check (decord / pyav)")
    args = p.parse_args(argv)
    from versavid_r1.data.builders import BuildError, build_dei_rows, load_event_annotations

    root = Path(args.video_root) if args.video_root else Path(args.out).resolve().parent
    try:
        videos = load_event_annotations(args.annotations)
        rows, stats = build_dei_rows(
            videos, video_template=args.video_template, min_span=args.min_span, max_span=args.max_span,
            min_context=args.min_context, require_neighbors=not args.allow_edge_events,
            per_video=args.per_video, seed=args.seed, subset=args.subset,
            real_duration=lambda path: _real_duration(root / path, args.backend),
        )
    except (BuildError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"real durations: {stats.checked} videos opened under {root}, {stats.unchecked} not found there "
          "(their annotated durations are trusted)")
    if stats.unfit:
        print(f"{len(stats.unfit)} annotated events end after their video and were not used:")
        for line in stats.unfit[:20]:
            print(f"  {line}")
        if len(stats.unfit) > 20:
            print(f"  ... and {len(stats.unfit) - 20} more")
    return _write_built(rows, stats, args.out, "videos")


def _real_duration(path: Path, backend: Optional[str]):
    """The video's duration as the loader sees it (through its per-process info cache), None when the file is
    absent. An unreadable file is an error: the row would fail validation later anyway."""
    from versavid_r1.data.builders import RealDuration
    from versavid_r1.data.video import video_info

    if not path.is_file():
        return None
    try:
        info = video_info(str(path), backend=backend)
    except Exception as exc:  # VideoReadError or a backend's own exception
        raise ValueError(f"cannot read {path} to check its duration: {type(exc).__name__}: {exc}") from exc
    return RealDuration(seconds=info.total_frames / info.fps, fps=float(info.fps))


def build_mix_main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Build MixVidQA rows from clip pairs with QA (the loader interleaves).")
    p.add_argument("--input", required=True, help="JSON/JSONL of {clip_a, clip_b, question, answer, target}")
    p.add_argument("--out", required=True, help="output JSONL")
    p.add_argument("--clip_template", default="{clip}", help="path of a clip name, e.g. 'kinetics/{clip}.mp4'")
    p.add_argument("--segment_seconds", type=float, nargs="+", default=None,
                   help="segment length: one number or MIN MAX (default: the training config's, 1.5 2.0)")
    p.add_argument("--shuffle_order", action="store_true", help="swap a/b (and target) for a seeded half of the pairs")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    from versavid_r1.data.builders import BuildError, build_mixvidqa_rows, read_records

    seg = None
    if args.segment_seconds is not None:
        seg = args.segment_seconds[0] if len(args.segment_seconds) == 1 else list(args.segment_seconds)
    try:
        rows, stats = build_mixvidqa_rows(
            read_records(args.input), clip_template=args.clip_template, segment_seconds=seg,
            shuffle_order=args.shuffle_order, seed=args.seed,
        )
    except (BuildError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _write_built(rows, stats, args.out, "clips")
