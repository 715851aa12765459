"""NExT-QA (Xiao et al., CVPR 2021) and IntentQA (Li et al., ICCV 2023): five-option questions in one CSV
layout (IntentQA extends NExT-QA's columns).

NExT-QA layout (github.com/doc-doc/NExT-QA, `dataset/nextqa/`): `val.csv` / `test.csv` with columns
`video, frame_count, width, height, question, answer (index), qid, type, a0..a4`, and `map_vid_vidorID.json`
mapping a video id to `<folder>/<video id>`; the raw videos (NExTVideo.zip) unpack into
`NExTVideo/<folder>/<video id>.mp4`. Question types CW, CH (causal), TN, TC (temporal; TP is counted as TN,
as the benchmark's `eval_mc.py` does), DC, DL, DO (descriptive).

IntentQA layout (github.com/JoseponLee/IntentQA): `train.csv` / `val.csv` / `test.csv` with `video_id,
frame_count, width, height, question, answer, qid, type, a0..a4, action, lemma, lemma_id`; the videos in
`Videos/<video_id>.mp4`. Types CW, CH, and TP/TN reported together as "TP&TN" (its README's table).

Scoring: neither benchmark's code parses text (their models pick an index); the answer is read with the
MMMU-style parser lmms-eval uses for NExT-QA (`extract.mmmu_letter`), an unparseable reply getting a fixed
pseudo-random option (lmms-eval: random). Accuracy overall and per type and type group.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..converters import ConversionReport
from .base import MCQABenchmark, options_of
from .extract import fallback_letter, mmmu_letter
from .layout import convert_items, mcqa_row, read_csv, read_json, require_file

COLUMNS = ("question", "answer", "qid", "type", "a0", "a1", "a2", "a3", "a4")
GROUPS = {"C": "causal", "T": "temporal", "D": "descriptive"}


class NExTQA(MCQABenchmark):
    name = "nextqa"
    title = "NExT-QA"
    axes = ("type_group", "type")
    video_column = "video"
    default_split = "test"
    source = "doc-doc/NExT-QA dataset/nextqa/*.csv; lmms-eval's MMMU-style answer parser"
    download = "github.com/doc-doc/NExT-QA (dataset/nextqa: test.csv, map_vid_vidorID.json) + NExTVideo.zip"

    video_folders = ("NExTVideo", "videos")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--split", default=self.default_split, choices=("val", "test"),
                            help=f"which CSV (default {self.default_split})")

    def video_name(self, root: Path, item: dict) -> str:
        if not hasattr(self, "_map"):
            self._map = read_json(require_file(root, ["map_vid_vidorID.json"], self.title))
        vid = str(item[self.video_column])
        return str(self._map.get(vid, vid))

    def question_type(self, raw: str) -> str:
        return "TN" if raw == "TP" else raw

    def convert(self, args: argparse.Namespace) -> ConversionReport:
        root = Path(args.root)
        table = require_file(root, [f"{args.split}.csv"], self.title)
        return convert_items(read_csv(table, (self.video_column, *COLUMNS)), table.name, self.video_dir(args, root),
                             lambda item: self.video_name(root, item), self.row, args.drop_missing)

    def row(self, item: dict, path: Path) -> dict:
        qtype = self.question_type(item["type"])
        return mcqa_row(self.name, f"{item[self.video_column]}_{item['qid']}", path, item["question"],
                        [item[f"a{i}"] for i in range(5)], int(item["answer"]),
                        {"type_group": GROUPS.get(qtype[:1], qtype), "type": qtype})

    def letter(self, text: str, row: dict):
        return mmmu_letter(text, options_of(row))

    def fallback(self, row: dict):
        return fallback_letter(row["id"], len(options_of(row)))


class IntentQA(NExTQA):
    name = "intentqa"
    title = "IntentQA"
    video_column = "video_id"
    source = "JoseponLee/IntentQA datasets/IntentQA/*.csv; lmms-eval's MMMU-style answer parser"
    download = "github.com/JoseponLee/IntentQA (test.csv) + the Videos folder of its Google Drive"

    video_folders = ("Videos", "videos")

    def video_name(self, root: Path, item: dict) -> str:
        return str(item[self.video_column])

    def question_type(self, raw: str) -> str:
        return "TP&TN" if raw in ("TP", "TN") else raw
