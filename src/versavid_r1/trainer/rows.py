"""Data rows <-> the `datasets.Dataset` the trainer iterates.

TRL's GRPOTrainer takes a `datasets.Dataset`, whose Arrow storage unifies the schema of all rows: the
content parts of chat messages gain each other's keys (`video: None` on text parts, which makes the chat
template emit a second video placeholder), and rows of different problem types gain each other's columns
or fail to convert when a field's type differs between types. So each row is stored whole as JSON text in
one column, `row`, with `problem_type` beside it for quick inspection; the trainer decodes the rows of a
batch and builds each prompt (chat messages) only then.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from datasets import Dataset

ROW_COLUMN = "row"


def rows_to_dataset(rows: Iterable[dict]) -> Dataset:
    """A Dataset with one JSON `row` column (plus `problem_type`) from validated data rows."""
    rows = list(rows)
    if not rows:
        raise ValueError("no training rows")
    return Dataset.from_dict(
        {
            ROW_COLUMN: [json.dumps(r, ensure_ascii=False, default=_jsonable) for r in rows],
            "problem_type": [str(r.get("problem_type", "")) for r in rows],
        }
    )


def _jsonable(value: Any):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def decode_rows(inputs: Sequence[dict]) -> list[dict]:
    """The data rows of a batch as plain dicts, all with the same keys (missing ones are None).

    TRL builds the reward functions' keyword arguments from the keys of the batch's first row, so every row
    must carry every key. Inputs that are already plain rows (no `row` column) are used as they are.
    """
    rows = []
    for x in inputs:
        raw = x.get(ROW_COLUMN) if isinstance(x, dict) else None
        rows.append(json.loads(raw) if isinstance(raw, str) else {k: v for k, v in x.items() if k != "prompt"})
    return uniform_keys(rows)


def uniform_keys(rows: Sequence[dict]) -> list[dict]:
    """The rows with every key any of them has (missing ones None), in first-seen order."""
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    return [{k: r.get(k) for k in keys} for r in rows]


class DatasetRows:
    """A dataset made by `rows_to_dataset` seen as plain rows, by index (where RowGuard draws replacements)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def row(self, index: int) -> dict:
        return decode_rows([self.dataset[int(index)]])[0]
