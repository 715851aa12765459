"""Benchmark rows -> the project's internal rows, and reading an evaluation file without losing a row.

Two row formats are read (one JSON object per line):

- **mcqa** (MVBench / Video-MME / NExT-QA style; what scripts/convert_mvbench.py writes)::

      {"id": "q1", "video": "v.mp4", "question": "What does the man do?",
       "options": ["runs", "sits", "jumps"], "answer": "B", "category": "Action"}

  `options` is a list of 2 to 7 texts (or a mapping "A" -> text); options that already carry their own
  label ("A. runs", "(A) runs") are accepted. `answer` is the letter ("B", "(B)", "B. sits") or the exact
  text of one option. Other keys (per-row frame/pixel overrides, clip bounds video_start/video_end in seconds, ...) are kept and used by the loader.
- **internal**: the training schema (versavid_r1.data.schema: problem, solution, problem_type, video, ...),
  used for captioning (DREAM-1K style), DarkEventInfer-Test and MixVidQA-Test. `category` is optional.

An mcqa row becomes an internal MCQA row: `problem` = the question, then "Options:" and one "A. text" line
per option; `solution` = "<answer>B</answer>".

`load_eval_items` returns one `EvalItem` per non-blank line: a bad row (invalid JSON, a field missing,
an answer that names no option, a duplicate id) is an item with its `error` and line number, never dropped.
Videos are not opened here; an unreadable video is found (and recorded) when the row is evaluated.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from versavid_r1.answer import wrap_answer
from versavid_r1.data.schema import iter_jsonl, normalize_row, validate_row
from versavid_r1.rewards.mcqa import OPTION_LETTERS
from versavid_r1.tasks import MCQA

MCQA_KEYS: tuple[str, ...] = ("question", "options", "answer")
# "A. text", "A) text", "(A) text", "A: text", "[A] text" at the start of an option or an answer.
_LABEL = re.compile(r"^\s*[\(\[]?\s*([A-Ga-g])\s*[\)\]\.:：]\s*")
_BARE_LETTER = re.compile(r"^\s*[\(\[]?\s*([A-Ga-g])\s*[\)\]]?\s*\.?\s*$")


class RowFormatError(ValueError):
    """A row that cannot be turned into an internal row; the message names the field."""


@dataclass
class EvalItem:
    """One line of an evaluation file: the internal row (normalised) or the reason it cannot be used."""

    id: str
    line: int
    row: Optional[dict] = None
    error: Optional[str] = None
    problem_type: Optional[str] = None
    category: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


# ------------------------------------------------------------------ mcqa rows ---------------------------
def detect_format(row: dict) -> str:
    """'mcqa' for rows with question/options/answer, 'internal' for rows with problem/solution."""
    if "options" in row and "question" in row:
        return "mcqa"
    if "problem" in row or "solution" in row or "problem_type" in row:
        return "internal"
    raise RowFormatError(
        "row is neither an mcqa row (video, question, options, answer) nor an internal row "
        f"(problem, solution, problem_type, video); keys: {sorted(row)}"
    )


def _option_texts(options: Any) -> list[str]:
    if isinstance(options, dict):
        keys = sorted(options, key=lambda k: str(k).strip().upper())
        letters = [str(k).strip().upper() for k in keys]
        if letters != list(OPTION_LETTERS[: len(letters)]):
            raise RowFormatError(f"options: mapping keys must be A, B, C, ... in order, got {letters}")
        options = [options[k] for k in keys]
    if not isinstance(options, (list, tuple)):
        raise RowFormatError(f"options: must be a list of texts, got {type(options).__name__}")
    if not 2 <= len(options) <= len(OPTION_LETTERS):
        raise RowFormatError(f"options: need 2 to {len(OPTION_LETTERS)} options, got {len(options)}")
    texts = []
    for k, opt in enumerate(options):
        if not isinstance(opt, (str, int, float)) or isinstance(opt, bool) or not str(opt).strip():
            raise RowFormatError(f"options[{k}]: must be a non-empty text, got {opt!r}")
        texts.append(str(opt).strip())
    # Strip labels only when every option carries its own letter in order ("A. x", "B. y"), so an option
    # whose text merely starts with a capital and a period is left alone.
    labels = [_LABEL.match(t) for t in texts]
    if all(m and m.group(1).upper() == OPTION_LETTERS[k] for k, m in enumerate(labels)):
        texts = [t[m.end():].strip() for t, m in zip(texts, labels)]
    return texts


def _answer_letter(answer: Any, options: list[str], original: list[str]) -> str:
    if not isinstance(answer, str) or not answer.strip():
        raise RowFormatError(f"answer: must be an option letter or an option's text, got {answer!r}")
    text = answer.strip()
    bare = _BARE_LETTER.match(text)
    labelled = _LABEL.match(text)
    letter = bare.group(1) if bare else (labelled.group(1) if labelled else None)
    if letter is None:
        matches = [k for k, opt in enumerate(options) if opt == text] or \
                  [k for k, opt in enumerate(original) if opt == text]
        if len(matches) != 1:
            raise RowFormatError(f"answer: {text!r} is neither a letter nor the text of exactly one option")
        return OPTION_LETTERS[matches[0]]
    letter = letter.upper()
    if OPTION_LETTERS.index(letter) >= len(options):
        raise RowFormatError(f"answer: letter {letter} but only {len(options)} options")
    return letter


def mcqa_to_internal(row: dict) -> dict:
    """An mcqa benchmark row as an internal MCQA row (see the module docstring). Raises RowFormatError."""
    for key in MCQA_KEYS:
        if row.get(key) is None:
            raise RowFormatError(f"{key}: missing field")
    question = row["question"]
    if not isinstance(question, str) or not question.strip():
        raise RowFormatError("question: must be a non-empty text")
    original = [str(o).strip() for o in row["options"]] if isinstance(row["options"], (list, tuple)) else []
    options = _option_texts(row["options"])
    letter = _answer_letter(row["answer"], options, original)
    lines = [f"{OPTION_LETTERS[k]}. {text}" for k, text in enumerate(options)]
    out = {k: v for k, v in row.items() if k not in MCQA_KEYS}
    out.update(
        problem=f"{question.strip()}\nOptions:\n" + "\n".join(lines),
        solution=wrap_answer(letter),
        problem_type=MCQA,
    )
    return out


def to_internal(row: dict, data_format: str) -> dict:
    """The internal row of `row` read as `data_format` ('auto' decides per row)."""
    fmt = detect_format(row) if data_format == "auto" else data_format
    if fmt == "mcqa":
        return mcqa_to_internal(row)
    if fmt == "internal":
        return dict(row)
    raise ValueError(f"unknown data format {data_format!r}")


# ------------------------------------------------------------------ reading a file ----------------------
def _row_id(obj: Any, line: int) -> str:
    rid = obj.get("id") if isinstance(obj, dict) else None
    if rid is None or (isinstance(rid, str) and not rid.strip()):
        return f"line-{line}"
    return str(rid)


def _category(row: Optional[dict]) -> Optional[str]:
    value = row.get("category") if isinstance(row, dict) else None
    return None if value is None or str(value).strip() == "" else str(value)


def load_eval_items(path: str | os.PathLike, data_format: str, video_cfg, limits=None) -> list[EvalItem]:
    """Every non-blank line of `path` as an EvalItem, in file order (see the module docstring).

    Relative videos resolve against `video_cfg.video_root`, else the file's folder (as in training).
    `limits`: `versavid_r1.data.limits.RowLimits` (the judges' field sizes), default the services' own.
    """
    path = Path(path)
    root = Path(video_cfg.video_root) if video_cfg.video_root else path.parent.resolve()
    items: list[EvalItem] = []
    first_line: dict[str, int] = {}
    for line, obj, json_error in iter_jsonl(path):
        rid = _row_id(obj, line)
        item = EvalItem(id=rid, line=line)
        if rid in first_line:
            item.id = f"{rid}@line-{line}"
            item.error = f"duplicate id {rid!r} (first on line {first_line[rid]})"
        else:
            first_line[rid] = line
        items.append(item)
        if json_error is not None:
            item.error = json_error
            continue
        if not isinstance(obj, dict):
            item.error = f"expected a JSON object, got {type(obj).__name__}"
            continue
        item.category = _category(obj)
        try:
            row = to_internal(obj, data_format)
        except RowFormatError as exc:
            item.error = item.error or str(exc)
            continue
        item.problem_type = row.get("problem_type") if isinstance(row.get("problem_type"), str) else None
        errors, _ = validate_row(row, line, root, video_cfg, infos=None, limits=limits)
        if errors:
            item.error = item.error or "; ".join(f"{e.field}: {e.message}" for e in errors)
        if item.error is None:
            item.row = normalize_row(row, root)
    return items
