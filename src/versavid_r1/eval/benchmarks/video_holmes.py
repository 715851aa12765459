"""Video-Holmes (Cheng et al., 2025): 1,837 six-option questions on 270 suspense short films, seven question
types.

Layout (github.com/TencentARC/Video-Holmes `download.py` + README; the Hugging Face dataset
TencentARC/Video-Holmes): `test_Video-Holmes.json`, a list of questions (`video ID`, `Question ID`,
`Question Type`, `Question`, `Options` {"A": ..., "F": ...}, `Answer` letter, `Explanation`), and the videos
of `videos.zip` as `videos/<video ID>.mp4` (the benchmark's evaluate.py) or `videos_cropped/<video ID>.mp4`
(the folder lmms-eval finds after unzipping); both are tried.

Scoring: the benchmark's own evaluate.py rule on the whole reply (`extract.holmes_letter`: the last
<answer> block, then the first letter A-F in a "X ", "X:" or "[X" form, then any A-F); accuracy overall and
per question type.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..converters import ConversionReport
from .base import MCQABenchmark
from .extract import holmes_letter
from .layout import LETTERS, convert_items, mcqa_row, read_json, require_file

TYPES = {"SR": "Social Reasoning", "IMC": "Intention & Motive Chaining", "TCI": "Temporal Causal Inference",
         "TA": "Timeline Analysis", "MHR": "Multimodal Hint Reasoning", "PAR": "Physical Anomaly Reasoning",
         "CTI": "Core Theme Inference"}


class VideoHolmes(MCQABenchmark):
    name = "video_holmes"
    title = "Video-Holmes"
    axes = ("question_type",)
    reads_completion = True
    source = "TencentARC/Video-Holmes test_Video-Holmes.json; its evaluate.py answer rule"
    download = "huggingface.co/datasets/TencentARC/Video-Holmes (test_Video-Holmes.json, videos.zip)"

    video_folders = ("videos", "videos_cropped")

    def convert(self, args: argparse.Namespace) -> ConversionReport:
        root = Path(args.root)
        annotations = require_file(root, ["test_Video-Holmes.json", "Benchmark/test_Video-Holmes.json"], self.title)
        return convert_items(read_json(annotations), annotations.name, self.video_dir(args, annotations.parent),
                             lambda item: str(item["video ID"]), self.row, args.drop_missing)

    def row(self, item: dict, path: Path) -> dict:
        keys = sorted(item["Options"])
        if "".join(keys) != LETTERS[: len(keys)]:
            raise ValueError(f"Options keys {keys} are not A, B, C, ...")
        qtype = str(item["Question Type"])
        return mcqa_row(self.name, item["Question ID"], path, item["Question"], [item["Options"][k] for k in keys],
                        keys.index(str(item["Answer"]).strip()), {"question_type": qtype},
                        type_name=TYPES.get(qtype, qtype))

    def letter(self, text: str, row: dict):
        return holmes_letter(text)
