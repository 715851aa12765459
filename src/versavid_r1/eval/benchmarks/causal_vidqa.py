"""Causal-VidQA (Li et al., CVPR 2022): per video, a description, an explanation, a prediction and a
counterfactual question, five options each; prediction and counterfactual also have five reason options.

Layout (github.com/bcmi/Causal-VidQA, read by its `dataset/dataset.py`): `split/{train,valid,test}.pkl`
(a pickled list of video ids; the test answers were released in 2024) and `QA/<video id>/text.json`
(`descriptive`, `explanatory`, `predictive`, `counterfactual`, each with `question` and `answer` [5 texts];
the last two also `reason` [5 texts]) with `QA/<video id>/answer.json` (the same keys, `answer` and `reason`
as indices). The videos ("Original Data" on the benchmark's download site) are looked up as
`<video dir>/<video id>.<video suffix>`: their folder layout is not documented in the repository and could
not be checked here (pass --video_dir).

Rows: six per video (ids `<video>_0` .. `<video>_5` as the benchmark's result files key them): D, E, PA, PR,
CA, CR; a reason row asks the prediction/counterfactual question with `prompts.CAUSAL_VIDQA_REASON_SUFFIX`.

Scoring (its `eval_mc.py`, `accuracy_metric_all`): description and explanation count when right; a
prediction or counterfactual counts only when BOTH its answer and its reason are right; the accuracy is the
mean over the four question units of every video. The letter is read with lmms-eval's MMMU-style parser
(`extract.mmmu_letter`; unparseable: a fixed pseudo-random option). A unit with an unscored row is an error.
"""
from __future__ import annotations

import argparse
import pickle
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from versavid_r1.prompts import CAUSAL_VIDQA_REASON_SUFFIX

from ..converters import ConversionReport
from .base import OK, MCQABenchmark, options_of
from .extract import fallback_letter, mmmu_letter
from .layout import LayoutError, add_row, mcqa_row, read_json, require_file, video_in

# (part, text.json key, candidates key, unit): in the order of the benchmark's question-type indices 0..5
PARTS = (("D", "descriptive", "answer", "description"), ("E", "explanatory", "answer", "explanation"),
         ("PA", "predictive", "answer", "prediction"), ("PR", "predictive", "reason", "prediction"),
         ("CA", "counterfactual", "answer", "counterfactual"), ("CR", "counterfactual", "reason", "counterfactual"))
UNITS = ("description", "explanation", "prediction", "counterfactual")
SPLITS = {"train": "train.pkl", "val": "valid.pkl", "test": "test.pkl"}


class _ListOfStrings(pickle.Unpickler):
    """Unpickles plain containers of strings only: a split file never needs a class, so none is loaded."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a split file")


def read_split(path: Path) -> list[str]:
    try:
        with open(path, "rb") as f:
            ids = _ListOfStrings(f).load()
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise LayoutError(f"{path}: not a pickled list of video ids ({exc})") from None
    if not isinstance(ids, (list, tuple)) or not all(isinstance(v, str) for v in ids):
        raise LayoutError(f"{path}: expected a list of video id strings")
    return list(ids)


class CausalVidQA(MCQABenchmark):
    name = "causal_vidqa"
    title = "Causal-VidQA"
    axes = ("type",)
    source = "bcmi/Causal-VidQA split/*.pkl + QA/<vid>/{text,answer}.json; its eval_mc.py"
    download = "github.com/bcmi/Causal-VidQA (Dataset Split, Text annotation + test answers, Original Data)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--split", default="test", choices=tuple(SPLITS), help="which split (default test)")

    def convert(self, args: argparse.Namespace) -> ConversionReport:
        root = Path(args.root)
        split = require_file(root, [f"split/{SPLITS[args.split]}", f"data/split/{SPLITS[args.split]}"], self.title)
        qa_dir = split.parent.parent / "QA"
        if not qa_dir.is_dir():
            raise LayoutError(f"{self.title}: no QA folder next to {split.parent} (expected {qa_dir})")
        videos = self.video_dir(args, root)
        report = ConversionReport()
        for vid in read_split(split):
            path, missing = video_in(videos, vid)
            try:
                text, answer = read_json(qa_dir / vid / "text.json"), read_json(qa_dir / vid / "answer.json")
            except LayoutError as exc:
                report.skipped.append(f"{vid}: {exc}")
                continue
            for k, (part, key, cands, unit) in enumerate(PARTS):
                def build(k=k, part=part, key=key, cands=cands, unit=unit):
                    question = text[key]["question"]
                    if cands == "reason":
                        question = f"{question.strip()} {CAUSAL_VIDQA_REASON_SUFFIX}"
                    return mcqa_row(self.name, f"{vid}_{k}", path, question, text[key][cands],
                                    int(answer[key][cands]), {"type": unit}, group=vid, part=part)
                add_row(report, f"{vid}/{part}", build, missing, args.drop_missing)
        return report

    def letter(self, text: str, row: dict):
        return mmmu_letter(text, options_of(row))

    def fallback(self, row: dict):
        return fallback_letter(row["id"], len(options_of(row)))

    def aggregate(self, records: Sequence[dict]) -> dict[str, Any]:
        parts: dict[str, dict[str, dict]] = defaultdict(dict)
        for r in records:
            bench = r.get("bench") or {}
            parts[str(bench.get("group"))][str(bench.get("part"))] = r
        units: dict[str, list[float]] = {u: [] for u in UNITS}
        errors = {u: 0 for u in UNITS}
        part_scores: dict[str, list[float]] = defaultdict(list)
        for video in parts.values():
            for unit in UNITS:
                members = [video.get(p) for p, _, _, u in PARTS if u == unit]
                if not all(m is not None and m.get("status") == OK for m in members):
                    errors[unit] += 1
                    continue
                units[unit].append(float(all(m["official_score"] == 1.0 for m in members)))
                for m in members:
                    part_scores[m["bench"]["part"]].append(float(m["official_score"]))
        every = [v for u in UNITS for v in units[u]]
        n_err = sum(errors.values())
        out = _unit_metrics(every, n_err)
        out["by_category"] = {"type": {u: _unit_metrics(units[u], errors[u]) for u in UNITS}}
        out["parts"] = {p: sum(v) / len(v) for p, v in sorted(part_scores.items()) if v}
        return out


def _unit_metrics(values: list[float], n_errors: int) -> dict[str, Any]:
    n = len(values)
    return {"value": sum(values) / n if n else None, "n": n, "n_errors": n_errors,
            "value_errors_as_wrong": sum(values) / (n + n_errors) if n + n_errors else None}
