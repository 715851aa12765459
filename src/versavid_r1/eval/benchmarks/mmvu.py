"""MMVU (Zhao et al., 2025): expert-level questions on specialised videos, 27 subjects in four disciplines,
multiple-choice (five options) and open-ended. The validation split (1,000 questions) has public answers;
the test split's are hidden.

Layout (github.com/yale-nlp/MMVU `data/validation.json`, the same file at the root of the Hugging Face
dataset yale-nlp/MMVU): a list of questions (`id`, `video` = a hub URL ending in
`videos/<Subject>/<n>.mp4`, `youtube_url`, `question_type` "multiple-choice" / "open-ended", `metadata`
{`subject`, `textbook`, `rationale`, `knowledge`}, `question`, `choices` {"A".."E"}, empty for open-ended,
`answer` a letter or a short text). The videos are the dataset's `videos/` folder, found under the root by
the URL's path after `resolve/main/`.

Rows: multiple-choice questions become mcqa rows; open-ended ones become free-form rows of the project's
short-answer type (MixVidQA: one video, one short answer checked against a ground truth) marked
`bench.only`, scored by MMVU's judge alone.

Scoring: MMVU's `acc_evaluation.py` asks GPT-4o, for every question, to extract the final answer from the
response and say whether it is correct (structured output {extracted_answer, correct}); here the benchmark
judge does so (`judge.py`), with the full response. Multiple-choice records also keep the project's letter
score (`score`). Accuracy overall and by discipline, subject and question form (discipline = the four groups
of the MMVU paper, as lmms-eval's `mmvu` task maps them).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from versavid_r1.answer import extract_answer, wrap_answer
from versavid_r1.tasks import MIX_VID_QA

from ..converters import ConversionReport
from .base import Benchmark
from .judge import BenchJudgeError, bool_field, json_object
from .layout import convert_items, mcqa_row, read_json, require_file

DISCIPLINES = {
    "Science": ("Biology", "Chemistry", "Modern Physics", "Astronomy", "Geography", "Materials Science",
                "Neurobiology", "Electromagnetism", "Thermodynamics", "Mechanics"),
    "Engineering": ("Civil Engineering", "Electrical Engineering", "Mechanical Engineering",
                    "Biomedical Engineering", "Electronics and Communication", "Computer Science"),
    "Healthcare": ("Clinical Medicine", "Basic Medicine", "Preventive Medicine", "Pharmacy", "Dentistry"),
    "Humanities & Social Science": ("Art", "Literature", "History", "Law", "Economics", "Management"),
}
DISCIPLINE_OF = {subject: d for d, subjects in DISCIPLINES.items() for subject in subjects}
MULTIPLE_CHOICE, OPEN_ENDED = "multiple-choice", "open-ended"


def video_path(url: str) -> str:
    """`videos/Art/0.mp4` of a hub URL (or the path itself when it is one)."""
    return url.split("/resolve/main/", 1)[-1]


class MMVU(Benchmark):
    name = "mmvu"
    title = "MMVU"
    axes = ("discipline", "subject", "question_form")
    scoring = "benchmark judge"
    source = "yale-nlp/MMVU validation.json; its acc_evaluation.py (LLM judge for every question)"
    download = "huggingface.co/datasets/yale-nlp/MMVU (validation.json, videos/)"

    video_folders = (".",)  # the rows name videos/<Subject>/<n>.mp4 relative to the dataset's root

    def convert(self, args: argparse.Namespace) -> ConversionReport:
        root = Path(args.root)
        annotations = require_file(root, ["validation.json", "data/validation.json"], self.title)
        return convert_items(read_json(annotations), annotations.name, self.video_dir(args, root),
                             lambda item: video_path(str(item["video"])), self.row, args.drop_missing)

    def row(self, item: dict, path: Path) -> dict[str, Any]:
        subject = str(item["metadata"]["subject"])
        form = str(item["question_type"])
        categories = {"discipline": DISCIPLINE_OF.get(subject, "other"), "subject": subject, "question_form": form}
        if form == MULTIPLE_CHOICE:
            choices = {k: str(v) for k, v in item["choices"].items() if str(v).strip()}
            keys = sorted(choices)
            return mcqa_row(self.name, item["id"], path, item["question"], [choices[k] for k in keys],
                            keys.index(str(item["answer"]).strip()), categories, form=form, choices=choices,
                            question_text=str(item["question"]).strip())
        if form != OPEN_ENDED:
            raise ValueError(f"unknown question_type {form!r}")
        return {"id": f"{self.name}/{item['id']}", "video": str(path), "problem": str(item["question"]).strip(),
                "solution": wrap_answer(str(item["answer"]).strip()), "problem_type": MIX_VID_QA,
                "benchmark": self.name, "categories": categories, "category": categories["discipline"],
                "bench": {"form": form, "only": True, "question_text": str(item["question"]).strip()}}

    async def score(self, row: dict, completion: str, fields: dict, judge) -> dict[str, Any]:
        bench = row.get("bench") or {}
        multiple = bench.get("form") == MULTIPLE_CHOICE
        block = f"Question: {bench['question_text']}"
        if multiple:  # MMVU's own layout of the question for its judge
            block += "\n\nOptions:\n" + "\n".join(f"{k}: {v}" for k, v in sorted(bench["choices"].items()))
        system = judge.prompts.mmvu_multiple_choice_system if multiple else judge.prompts.mmvu_open_ended_system
        user = judge.render(judge.prompts.mmvu_template, question_block=block,
                            ground_truth=extract_answer(row["solution"]), response=completion)
        reply = await judge.chat(user, system=system)
        verdict = json_object(reply)
        correct = bool_field(verdict, "correct", reply)
        extracted = verdict.get("extracted_answer")
        if extracted is not None and not isinstance(extracted, str):
            raise BenchJudgeError(f"extracted_answer is not a text: {reply[:200]!r}")
        return {"official_answer": extracted or "", "official_score": float(correct),
                "official_judge": {**judge.record(), "reply": reply}}
