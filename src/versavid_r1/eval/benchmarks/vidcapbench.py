"""VidCapBench (Chen et al., Findings of ACL 2025): video captions judged by question answering. The
automatically evaluable subset, VidCapBench-AE, is the one its eval.py scores (VidCapBench-HE needs
human judges).

Layout (github.com/VidCapBench/VidCapBench README and eval.py; files on the Hugging Face dataset
VidCapBench/VidCapBench): `VidCapBench-AE_QA.jsonl`, one line per video with `video_dir` (the video's file
name, matched against the caption file's `video_dir` by eval.py; the README's caption example calls it
`video`, so both keys are read) and `QA_pairs` [{`question`, `answer`, `sub_category`, ...}]. Where the
videos lie inside the download is not documented in the repository and could not be checked here: they are
looked up by file name in --video_dir (default ROOT/videos, else ROOT).

Rows: caption rows with VidCapBench's prompt ("Describe the video in detail."), marked `bench.only` (no
reference caption exists, so the project's AutoDQ does not apply); the QA pairs travel in `bench.qa` and,
as text, in the solution.

Scoring (its eval.py): for each QA pair the judge first answers the question from the caption alone, then
grades that answer against the correct one (2, 1, 0, -1 -> A, B, C, D, read as eval.py reads it,
`judge.vidcapbench_grade`). Over all pairs: accuracy = A/(A+B+C+D), precision = (A+B)/(A+B+D), coverage =
(A+B+D)/(A+B+C+D), overall and per dimension (aesthetics, content, motion, physics, from the pairs'
sub-categories as eval.py groups them). The headline is accuracy (what the paper's 12.5 matches in scale; the
paper does not name the column). eval.py's conciseness (accuracy per flan-t5 token) is not computed.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any, Optional, Sequence

from versavid_r1.answer import wrap_answer
from versavid_r1.prompts import DREAM1K_CAPTION_QUESTION
from versavid_r1.tasks import CAPTION

from ..converters import ConversionReport, read_json_or_jsonl
from .base import OK, Benchmark
from .judge import vidcapbench_grade
from .layout import convert_items, require_file

DIMENSIONS = {
    "aesthetics": ("cinematography", "composition", "lighting", "color", "style"),
    "content": ("background", "subjects", "events"),
    "motion": ("attribute changes", "object motion", "body movements", "environmental motion",
               "spatiotemporal transformations"),
    "physics": ("spatial relationships", "counter intuitive", "common sense"),
}
DIMENSION_OF = {sub: dim for dim, subs in DIMENSIONS.items() for sub in subs}


class VidCapBench(Benchmark):
    name = "vidcapbench"
    title = "VidCapBench"
    axes = ("dimension",)
    scoring = "benchmark judge"
    source = "VidCapBench/VidCapBench VidCapBench-AE_QA.jsonl; its eval.py"
    download = "huggingface.co/datasets/VidCapBench/VidCapBench (VidCapBench-AE_QA.jsonl and the videos)"

    video_folders = ("videos", ".")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--qa_file", default="VidCapBench-AE_QA.jsonl", help="the QA file under ROOT")

    def convert(self, args: argparse.Namespace) -> ConversionReport:
        root = Path(args.root)
        qa_file = require_file(root, [args.qa_file], self.title)
        return convert_items(read_json_or_jsonl(qa_file), qa_file.name, self.video_dir(args, root),
                             lambda item: Path(video_name(item)).name, self.row, args.drop_missing)

    def row(self, item: dict, path: Path) -> dict[str, Any]:
        name = video_name(item)
        pairs = [{"question": str(p["question"]), "answer": str(p["answer"]), "sub_category": str(p["sub_category"])}
                 for p in item["QA_pairs"]]
        if not name or not pairs:
            raise ValueError("needs video_dir and at least one QA pair")
        reference = "\n".join(f"Q: {p['question']} A: {p['answer']}" for p in pairs)
        return {"id": f"{self.name}/{Path(name).stem}", "video": str(path), "problem": DREAM1K_CAPTION_QUESTION,
                "solution": wrap_answer(reference), "problem_type": CAPTION, "benchmark": self.name,
                "bench": {"only": True, "qa": pairs}}

    async def score(self, row: dict, completion: str, fields: dict, judge) -> dict[str, Any]:
        import asyncio

        caption = str(fields.get("answer") or "")
        graded = await asyncio.gather(*(self._grade(judge, caption, p) for p in row["bench"]["qa"]))
        counted = [g for g in graded if g["grade"] is not None]
        return {"official_qa": graded, "official_answer": caption,
                "official_score": (sum(g["grade"] == "A" for g in counted) / len(counted)) if counted else None,
                "official_judge": judge.record()}

    async def _grade(self, judge, caption: str, pair: dict) -> dict[str, Any]:
        prompts = judge.prompts
        pred = await judge.chat(judge.render(prompts.vidcapbench_answer, caption=caption, question=pair["question"]))
        reply = await judge.chat(judge.render(prompts.vidcapbench_judge, question=pair["question"],
                                              answer=pair["answer"], prediction=pred))
        return {**pair, "pred": pred, "judgement": reply, "grade": vidcapbench_grade(reply)}

    def aggregate(self, records: Sequence[dict]) -> dict[str, Any]:
        ok = [r for r in records if r.get("status") == OK]
        pairs = [p for r in ok for p in r.get("official_qa") or [] if p.get("grade") is not None]
        out = grade_metrics(Counter(p["grade"] for p in pairs))
        out["n_videos"], out["n_errors"] = len(ok), len(records) - len(ok)
        out["by_category"] = {"dimension": {
            dim: grade_metrics(Counter(p["grade"] for p in pairs
                                       if DIMENSION_OF.get(p["sub_category"], "other") == dim))
            for dim in (*DIMENSIONS, "other")
            if any(DIMENSION_OF.get(p["sub_category"], "other") == dim for p in pairs)}}
        return out


def video_name(item: dict) -> str:
    """The video's file name: eval.py matches `video_dir`; the README's example calls it `video`."""
    return str(item.get("video_dir") or item.get("video") or "")


def grade_metrics(grades: Counter) -> dict[str, Any]:
    a, b, c, d = (grades.get(x, 0) for x in "ABCD")
    total = a + b + c + d

    def share(num: int, den: int) -> Optional[float]:
        return num / den if den else None
    return {"value": share(a, total), "accuracy": share(a, total), "precision": share(a + b, a + b + d),
            "coverage": share(a + b + d, total), "n": total, "grades": {"A": a, "B": b, "C": c, "D": d}}
