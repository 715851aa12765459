"""The benchmarks whose converters existed before the suite (MVBench, DREAM-1K) and the paper's two proxy
test sets, as suite benchmarks.

- **MVBench** (OpenGVLab/MVBench; layout in `versavid_r1.eval.mvbench`): scored by MVBench's own
  `check_ans` (`extract.mvbench_match`); accuracy overall and per task (the benchmark averages its 20
  equal-sized tasks, which equals the overall accuracy).
- **DREAM-1K** (Tarsier's DREAM-1K; `converters.convert_dream1k`): AutoDQ through the project's caption judge
  (`--scoring official` with DREAM-1K's prompt file for published numbers, docs/evaluation.md); F1 of the
  mean recall and mean precision, per subset.
- **DarkEventInfer-Test, MixVidQA-Test**: the paper's own test sets, scored by the Qwen2.5 judge as in the
  paper (sum of 0/1/2 scores; accuracy). They are not public as of this writing; the converter reads rows in
  the authors' released row format (the format of their training JSONL: `problem`, `solution`,
  `problem_type`, `video`), keeps the rows of the benchmark's type and resolves their videos.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from versavid_r1.answer import extract_answer
from versavid_r1.tasks import DARK_EVENT_INFER, MIX_VID_QA

from ..convert_cli import add_mvbench_arguments, convert_mvbench_args
from ..converters import ConversionReport, convert_dream1k, read_json_or_jsonl
from .base import OK, Benchmark, MCQABenchmark
from .extract import mvbench_match
from .layout import LayoutError, video_in


def _tag(report: ConversionReport, benchmark: str, axis: str) -> ConversionReport:
    for row in report.rows:
        row["benchmark"] = benchmark
        if row.get("category") is not None:
            row["categories"] = {axis: row["category"]}
    return report


class MVBench(MCQABenchmark):
    name = "mvbench"
    title = "MVBench"
    axes = ("task",)
    source = "OpenGVLab/MVBench json/ + video/; check_ans of its evaluation notebook"
    download = "huggingface.co/datasets/OpenGVLab/MVBench (json/, video/*.zip unzipped in video/)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_mvbench_arguments(parser)

    def convert(self, args: argparse.Namespace) -> ConversionReport:
        return _tag(convert_mvbench_args(args), self.name, "task")

    async def score(self, row: dict, completion: str, fields: dict, judge) -> dict[str, Any]:
        """MVBench compares the reply's first word with the right option's tag; there is no letter to extract."""
        text = self.reply_text(completion, fields)
        truth = extract_answer(row["solution"])[:1].upper()
        first = text.strip().split(" ")[0] if text.strip() else ""
        return {"official_answer": first, "official_parsed": bool(first),
                "official_score": float(mvbench_match(text, truth))}


class Dream1K(Benchmark):
    name = "dream1k"
    title = "DREAM-1K"
    axes = ("subset",)
    scoring = "project judge"
    metric = "AutoDQ F1"
    source = "Tarsier's DREAM-1K metadata.json / DREAM-1k.jsonl; AutoDQ (Tarsier's evaluation code)"
    download = "huggingface.co/datasets/omni-research/DREAM-1K (json/metadata.json, video/DREAM-1K_videos)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--annotations", required=True, help="DREAM-1K metadata.json or JSONL")
        parser.add_argument("--video_dir", required=True, help="folder holding the videos")
        parser.add_argument("--question", default=None, help="prompt of every row (default: DREAM-1K's)")

    def convert(self, args: argparse.Namespace) -> ConversionReport:
        if not Path(args.annotations).is_file():
            raise LayoutError(f"{self.title}: {args.annotations} is not a file (expected json/metadata.json or "
                              "Tarsier's DREAM-1k.jsonl)")
        report = convert_dream1k(args.annotations, args.video_dir, question=args.question,
                                 drop_missing=args.drop_missing)
        return _tag(report, self.name, "subset")

    async def score(self, row: dict, completion: str, fields: dict, judge) -> dict[str, Any]:
        return {"official_score": fields.get("f1")}

    def aggregate(self, records: Sequence[dict]) -> dict[str, Any]:
        out = _autodq(records)
        out["by_category"] = {"subset": {}}
        values = sorted({(r.get("categories") or {}).get("subset") for r in records} - {None})
        for value in values:
            out["by_category"]["subset"][value] = _autodq(
                [r for r in records if (r.get("categories") or {}).get("subset") == value])
        return out


def _autodq(records: Sequence[dict]) -> dict[str, Any]:
    """DREAM-1K's F1 = 2RP/(R+P) of the mean recall R and mean precision P over scored samples."""
    from ..scoring import f1_score

    ok = [r for r in records if r.get("status") == OK and r.get("recall") is not None]
    n = len(ok)
    recall = sum(float(r["recall"]) for r in ok) / n if n else None
    precision = sum(float(r["precision"]) for r in ok) / n if n else None
    return {"value": f1_score(recall, precision) if n else None, "n": n, "n_errors": len(records) - n,
            "recall": recall, "precision": precision}


class ProxyTest(Benchmark):
    """A test set in the authors' row format, scored by the project's Qwen2.5 judge."""

    problem_type = ""
    scoring = "project judge"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--annotations", required=True,
                            help="the test set: JSONL/JSON rows in the authors' format (problem, solution, "
                                 "problem_type, video)")
        parser.add_argument("--video_dir", default=None,
                            help="folder the rows' relative video paths start from (default: the file's folder)")

    def convert(self, args: argparse.Namespace) -> ConversionReport:
        source = Path(args.annotations)
        if not source.is_file():
            raise LayoutError(f"{self.title}: {source} is not a file (expected the test set's JSONL)")
        base = Path(args.video_dir) if args.video_dir else source.parent
        report = ConversionReport()
        for k, item in enumerate(read_json_or_jsonl(source)):
            where = f"{source.name}[{k}]"
            if not isinstance(item, dict) or item.get("problem_type") != self.problem_type:
                report.skipped.append(f"{where}: not a {self.problem_type} row")
                continue
            row = {**item, "id": f"{self.name}/{item.get('id', k)}", "benchmark": self.name}
            videos = item.get("video")
            paths = [videos] if isinstance(videos, str) else list(videos or [])
            found = [video_in(base, str(v)) for v in paths]
            row["video"] = str(found[0][0]) if isinstance(videos, str) else [str(p) for p, _ in found]
            problems = [m for _, m in found if m] or ([] if paths else ["no video"])
            report.add(row, where, "; ".join(problems) or None, args.drop_missing)
        return report


class DarkEventInferTest(ProxyTest):
    name = "dei_test"
    title = "DarkEventInfer-Test"
    problem_type = DARK_EVENT_INFER
    metric = "score sum (0/1/2)"
    percent = False
    source = "the paper (sum of the judge's 0/1/2 scores); rows in the authors' training-data format"
    download = "not public as of this writing (ask the authors: github.com/VidBridge-R1/VidBridge-R1)"

    def aggregate(self, records: Sequence[dict]) -> dict[str, Any]:
        out = super().aggregate(records)
        ok = [r for r in records if r.get("status") == OK and r.get("official_score") is not None]
        out["mean"], out["value"] = out["value"], sum(float(r["official_score"]) for r in ok) if ok else None
        return out


class MixVidQATest(ProxyTest):
    name = "mixvidqa_test"
    title = "MixVidQA-Test"
    problem_type = MIX_VID_QA
    source = "the paper (accuracy of the judge's True/False); rows in the authors' training-data format"
    download = "not public as of this writing (ask the authors: github.com/VidBridge-R1/VidBridge-R1)"
