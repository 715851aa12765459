"""What every benchmark of the suite provides, and the shared multiple-choice case.

A `Benchmark` has a converter (`add_arguments` + `convert`: the released files -> evaluation rows), an
official per-sample scorer (`score`: fields added to the sample's record) and an official aggregate
(`aggregate`: the benchmark's number and its per-category breakdown, computed from records only, so it can
be recomputed from samples.jsonl). Three ways of scoring exist:

- `rules`: the project scores the row as usual (MCQA letter) and the benchmark's own answer rule adds
  `official_answer`, `official_parsed` and `official_score` (0/1);
- `project judge`: the project's judges are the benchmark's scorer (DREAM-1K's AutoDQ, DarkEventInfer,
  MixVidQA): `official_score` is the record's score;
- `benchmark judge`: an OpenAI-compatible judge with the benchmark's prompts scores the sample
  (`judge.BenchJudge`); rows whose project scoring would be meaningless are marked `bench.only` and are
  scored by it alone.

A record counts for the official number when its status is "ok" (scoring failures are rescored by the next
run, never counted as wrong); `n_errors` counts the others and `value_errors_as_wrong` gives the number
with them counted as wrong.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any, Optional, Sequence

from pathlib import Path

from versavid_r1.answer import extract_answer

from ..converters import ConversionReport
from .layout import require_dir

OK = "ok"


class Benchmark:
    name: str = ""
    title: str = ""
    axes: tuple[str, ...] = ()  # category axes, in the order the report shows them
    scoring: str = "rules"  # rules | project judge | benchmark judge
    metric: str = "accuracy"  # what `value` is (shown in the results table)
    percent: bool = True  # `value` is a share shown as a percentage
    source: str = ""  # where the layout and scoring rules come from (docs/evaluation.md has the details)
    download: str = ""  # one line: where to get the files
    video_folders: tuple[str, ...] = ("videos",)  # where the download puts the videos, under the root

    # --- conversion ---------------------------------------------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--root", required=True, help=f"the {self.title} download folder")
        parser.add_argument("--video_dir", default=None,
                            help=f"the videos' folder (default: ROOT/{' or ROOT/'.join(self.video_folders)})")

    def video_dir(self, args: argparse.Namespace, base: Path) -> Path:
        """--video_dir, else the first of `video_folders` under `base` that exists (a LayoutError if none)."""
        return Path(args.video_dir) if args.video_dir else require_dir(base, self.video_folders, self.title)

    def convert(self, args: argparse.Namespace) -> ConversionReport:
        raise NotImplementedError

    # --- scoring ------------------------------------------------------------------------------------
    def needs_judge(self) -> bool:
        return self.scoring == "benchmark judge"

    async def score(self, row: dict, completion: str, fields: dict, judge) -> dict[str, Any]:
        """Official fields of one sample; `fields` are the project's (answer, score, status, ...)."""
        return {"official_score": fields.get("score")}

    def aggregate(self, records: Sequence[dict]) -> dict[str, Any]:
        """The official number over ok records, errors counted apart, and per category axis."""
        ok = [r for r in records if r.get("status") == OK and r.get("official_score") is not None]
        out = mean_metrics(ok, len(records) - len(ok))
        out["by_category"] = {axis: {value: mean_metrics(mine, errs)
                                     for value, (mine, errs) in split_by(records, axis).items()}
                              for axis in self.axes}
        return out


def split_by(records: Sequence[dict], axis: str) -> dict[str, tuple[list[dict], int]]:
    """{category value: (ok records, number of not-ok records)} along one axis."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        value = (r.get("categories") or {}).get(axis)
        if value is not None:
            groups[str(value)].append(r)
    out = {}
    for value in sorted(groups):
        ok = [r for r in groups[value] if r.get("status") == OK and r.get("official_score") is not None]
        out[value] = (ok, len(groups[value]) - len(ok))
    return out


def mean_metrics(ok: Sequence[dict], n_errors: int) -> dict[str, Any]:
    scores = [float(r["official_score"]) for r in ok]
    n = len(scores)
    return {
        "value": sum(scores) / n if n else None,
        "n": n,
        "n_errors": n_errors,
        "value_errors_as_wrong": sum(scores) / (n + n_errors) if n + n_errors else None,
        "n_unparsed": sum(1 for r in ok if r.get("official_parsed") is False),
    }


class MCQABenchmark(Benchmark):
    """Multiple choice: the benchmark's own answer rule on the reply, compared with the right letter."""

    def reply_text(self, completion: str, fields: dict) -> str:
        """What the rule reads: the answer inside <answer> tags (or, with the fallback, the reply without
        its <think> block), as the benchmarks' code reads a reply whose reasoning was stripped."""
        return str(fields.get("answer") or "")

    def letter(self, text: str, row: dict) -> Optional[str]:
        raise NotImplementedError

    def fallback(self, row: dict) -> Optional[str]:
        """The letter of an unparseable reply (None: it is wrong)."""
        return None

    async def score(self, row: dict, completion: str, fields: dict, judge) -> dict[str, Any]:
        truth = extract_answer(row["solution"])[:1].upper()
        text = completion if self.reads_completion else self.reply_text(completion, fields)
        letter = self.letter(text, row)
        parsed = letter is not None
        if letter is None:
            letter = self.fallback(row)
        return {"official_answer": letter or "", "official_parsed": parsed,
                "official_score": float(letter is not None and letter == truth)}

    reads_completion: bool = False  # the rule reads the whole completion (Video-Holmes) instead of the answer


def options_of(row: dict) -> list[str]:
    return list((row.get("bench") or {}).get("options") or [])
