"""LongVideoBench (Wu et al., NeurIPS 2024 D&B): referring-reasoning questions on videos up to an hour long,
4 or 5 options. The validation split is the one with public answers (the test split's file has none).

Layout, as released on the Hugging Face hub (longvideobench/LongVideoBench) and read by the benchmark's own
`LongVideoBenchDataset` (github.com/longvideobench/LongVideoBench): `lvb_val.json`, a list of questions
(`id`, `video_id`, `video_path`, `question`, `candidates` [texts], `correct_choice` (index), `duration_group`
(15, 60, 600 or 3600 s), `question_category`, `topic_category`, `level`, `duration`, subtitle fields), and
the videos of `videos.tar.part.*` under `videos/<video_path>`. Subtitles are not used (the paper's
setting, as in lmms-eval's `longvideobench_val_v`).

Scoring: the answer rule of the benchmark's authors as lmms-eval implements it (first capital A-E after the
answer phrases are removed); an unparseable reply gets a random option in their code, here a fixed
pseudo-random one per question (`extract.fallback_letter`). Accuracy overall and by duration group,
question category, topic and level.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..converters import ConversionReport
from .base import MCQABenchmark, options_of
from .extract import fallback_letter, first_letter_after_prefixes
from .layout import categories_of, convert_items, mcqa_row, read_json, require_file

SPLITS = {"val": "lvb_val.json"}


class LongVideoBench(MCQABenchmark):
    name = "longvideobench"
    title = "LongVideoBench"
    axes = ("duration_group", "question_category", "topic_category", "level")
    source = "longvideobench/LongVideoBench lvb_val.json; answer rule of lmms-eval's longvideobench task"
    download = "huggingface.co/datasets/longvideobench/LongVideoBench (lvb_val.json, videos.tar.part.* -> videos/)"

    def convert(self, args: argparse.Namespace) -> ConversionReport:
        root = Path(args.root)
        annotations = require_file(root, [SPLITS["val"]], self.title)
        return convert_items(read_json(annotations), annotations.name, self.video_dir(args, root),
                             lambda item: str(item["video_path"]), self.row, args.drop_missing)

    def row(self, item: dict, path: Path) -> dict:
        return mcqa_row(self.name, item["id"], path, item["question"], item["candidates"],
                        int(item["correct_choice"]), categories_of((a, item.get(a)) for a in self.axes))

    def letter(self, text: str, row: dict):
        return first_letter_after_prefixes(text, "ABCDE")

    def fallback(self, row: dict):
        return fallback_letter(row["id"], len(options_of(row)))
