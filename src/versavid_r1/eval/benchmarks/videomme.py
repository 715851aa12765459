"""Video-MME (Fu et al., CVPR 2025): 900 videos, 2,700 four-option questions; the paper's setting is
without subtitles.

Layout, as released on the Hugging Face hub (lmms-lab/Video-MME, the files lmms-eval's `videomme` task
reads): `videomme/test-00000-of-00001.parquet` with one row per question (`video_id`, `duration` short /
medium / long, `domain`, `sub_category`, `url`, `videoID`, `question_id`, `task_type`, `question`, `options`
["A. ...", ...], `answer` "C"), and the videos of the `videos_chunked_*.zip` archives unpacked into
`data/<videoID>.mp4` (.MP4 or .mkv tried too, as lmms-eval does).

Scoring: Video-MME's own `eval_your_results.py` rule (`extract.first_letter_after_prefixes`, letters A-D;
nothing found = wrong), accuracy overall and by duration, domain, sub-category and task type.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..converters import ConversionReport
from .base import MCQABenchmark
from .extract import first_letter_after_prefixes
from .layout import LETTERS, categories_of, convert_items, mcqa_row, require_file

PARQUET = "videomme/test-00000-of-00001.parquet"


def read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq  # a dependency of `datasets`

    return pq.read_table(path).to_pylist()


class VideoMME(MCQABenchmark):
    name = "videomme"
    title = "Video-MME"
    axes = ("duration", "domain", "sub_category", "task_type")
    source = "lmms-lab/Video-MME parquet; rule of Video-MME's eval_your_results.py"
    download = "huggingface.co/datasets/lmms-lab/Video-MME (videomme/*.parquet, videos_chunked_*.zip -> data/)"

    video_folders = ("data",)

    def convert(self, args: argparse.Namespace) -> ConversionReport:
        root = Path(args.root)
        table = require_file(root, [PARQUET, Path(PARQUET).name], self.title)
        return convert_items(read_parquet(table), table.name, self.video_dir(args, root),
                             lambda item: str(item["videoID"]), self.row, args.drop_missing)

    def row(self, item: dict, path: Path) -> dict:
        return mcqa_row(self.name, item["question_id"], path, item["question"], list(item["options"]),
                        LETTERS.index(str(item["answer"]).strip().upper()[:1]),
                        categories_of((a, item.get(a)) for a in self.axes))

    def letter(self, text: str, row: dict):
        return first_letter_after_prefixes(text, "ABCD")
