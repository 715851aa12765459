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



def _setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.ERROR if quiet else logging.WARNING, format="%(levelname)s %(message)s")


# ------------------------------------------------------------------ validate ---------------------
def _settings_from_config(path: Optional[str]) -> dict:
    """The video options (VideoArguments' keys), judge_max_field_chars and max_prompt_length of a training
    or evaluation YAML, so that rows are checked with the settings the run will use."""
    if not path:
        return {}
    import yaml
    from dataclasses import fields

    from versavid_r1.data.args import VideoArguments

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    keep = {f.name for f in fields(VideoArguments)} | {"judge_max_field_chars", "max_prompt_length",
                                                       "judge_max_body_bytes", "judge_max_input_tokens"}
    return {k: v for k, v in data.items() if k in keep}


def validate_main(argv: Optional[Sequence[str]] = None) -> int:
    from versavid_r1.protocol import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FIELD_CHARS, DEFAULT_MAX_INPUT_TOKENS

    p = argparse.ArgumentParser(
        description="Check every row of a VersaVid-R1 JSONL file (fields, answers, videos, spans, MixVidQA pairs, "
        "limits of training and the judges) and load each row's video as training will. Every problem is "
        "reported with its line number. Exit 1 on any error."
    )
    p.add_argument("data", help="JSONL file, one row per line")
    p.add_argument("--config", default=None, metavar="YAML",
                   help="the training (or evaluation) YAML: its video settings, judge_max_field_chars and "
                        "max_prompt_length are the ones checked (flags below override them)")
    p.add_argument("--video_root", default=None, help="folder for relative video paths (default: the JSONL's folder)")
    p.add_argument("--skip_invalid", action="store_true",
                   help="skip bad rows (each logged), print how many, and exit 0 if any row is valid")
    p.add_argument("--write_clean", default=None, metavar="PATH",
                   help="write the valid rows, as read, to this JSONL (with --skip_invalid)")
    p.add_argument("--nframes", type=int, default=None, help="frames per video to check sampling with (default 16)")
    p.add_argument("--fps", type=float, default=None, help="sample by fps instead of nframes")
    p.add_argument("--no_check_videos", action="store_true", help="do not open the videos (structure only)")
    p.add_argument("--no_decode", action="store_true",
                   help="open the videos for their headers only, without decoding the sampled frames")
    p.add_argument("--backend", default=None, help="qwen_vl_utils video backend (decord / pyav)")
    p.add_argument("--video_read_timeout_s", type=float, default=None,
                   help="seconds one video read may take before the row is reported (default 120; a hung mount)")
    p.add_argument("--judge_max_field_chars", type=int, default=None,
                   help=f"the judges' --max-field-chars (default {DEFAULT_MAX_FIELD_CHARS}, theirs)")
    p.add_argument("--judge_max_body_bytes", type=int, default=None,
                   help=f"the judges' --max-body-bytes (default {DEFAULT_MAX_BODY_BYTES}, theirs)")
    p.add_argument("--judge_max_input_tokens", type=int, default=None,
                   help=f"the Qwen judge's --max-input-tokens (default {DEFAULT_MAX_INPUT_TOKENS}, theirs)")
    p.add_argument("--max_prompt_length", type=int, default=None,
                   help="report rows whose video alone has this many tokens or more")
    p.add_argument("--workers", type=int, default=0, help="validate in this many processes (decoding is CPU-bound)")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.add_argument("--no_progress", dest="progress", action="store_false", help="no progress bar")
    args = p.parse_args(argv)
    _setup_logging()

    from versavid_r1.data.args import VideoArguments
    from versavid_r1.data.limits import RowLimits
    from versavid_r1.data.schema import ROW_SOURCE_KEY, VIDEO_PATHS_KEY, validate_file

    settings = _settings_from_config(args.config)
    for key, value in (("video_root", args.video_root), ("nframes", args.nframes), ("video_fps", args.fps),
                       ("video_backend", args.backend), ("judge_max_field_chars", args.judge_max_field_chars),
                       ("max_prompt_length", args.max_prompt_length),
                       ("video_read_timeout_s", args.video_read_timeout_s),
                       ("judge_max_body_bytes", args.judge_max_body_bytes),
                       ("judge_max_input_tokens", args.judge_max_input_tokens)):
        if value is not None:
            settings[key] = value
    if args.fps is not None:
        settings.setdefault("nframes", None)
    limits = RowLimits(judge_max_field_chars=settings.pop("judge_max_field_chars", DEFAULT_MAX_FIELD_CHARS),
                       max_prompt_length=settings.pop("max_prompt_length", None),
                       judge_max_body_bytes=settings.pop("judge_max_body_bytes", DEFAULT_MAX_BODY_BYTES),
                       judge_max_input_tokens=settings.pop("judge_max_input_tokens", DEFAULT_MAX_INPUT_TOKENS))
    try:
        cfg = VideoArguments(**settings).video_config()
    except (TypeError, ValueError) as exc:  # a bad setting in the YAML or a flag: one line, exit 2
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    t0 = time.perf_counter()
    report = validate_file(args.data, cfg=cfg, skip_invalid=args.skip_invalid, check_videos=not args.no_check_videos,
                           limits=limits, decode=not args.no_decode, workers=args.workers, progress=progress)
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
                    row = {k: v for k, v in row.items() if k not in (VIDEO_PATHS_KEY, ROW_SOURCE_KEY)}
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
    p = argparse.ArgumentParser(
        description="Write the synthetic demo dataset (H.264 mp4s + JSONL, all four types), or its held-out set.")
    p.add_argument("--out", required=True, help="output folder (relocatable: video paths are relative)")
    p.add_argument("--n", type=int, default=None,
                   help="number of rows (default 32; held-out: 128). Training rows cycle MCQA, DarkEventInfer, "
                        "MixVidQA, caption, MCQA, MCQA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heldout", nargs="?", const="MCQA", default=None, choices=["MCQA", "caption"],
                   help="write the held-out set instead (heldout.jsonl: colour questions on new videos; "
                        "'caption': heldout_caption.jsonl)")
    args = p.parse_args(argv)
    from versavid_r1.data.demo import make_demo_dataset, make_heldout_dataset

    t0 = time.perf_counter()
    if args.heldout:
        n = args.n or 128
        path = make_heldout_dataset(args.out, n=n, seed=args.seed, problem_type=args.heldout)
    else:
        n = args.n or 32
        path = make_demo_dataset(args.out, n=n, seed=args.seed)
    print(f"{path} ({n} rows, seed {args.seed}) ready in {time.perf_counter() - t0:.1f} s")
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
