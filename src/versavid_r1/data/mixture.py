"""Training on a mixture of several JSONL files (or problem types of one file) in set proportions.

The config lists the sources and their weights (`data_mixture`, see `versavid_r1.trainer.args`)::

    data_mixture:
      - {path: data/mcqa.jsonl, weight: 2003}
      - {path: data/dei.jsonl, weight: 1841}
      - {path: data/all.jsonl, problem_type: caption, weight: 4624}   # one type of a mixed file
    mixture_size: 10800        # rows per epoch (default: all valid rows of all sources)

or on the command line `--data_mixture data/mcqa.jsonl=2003 caption@data/all.jsonl=4624` (a source without
a path, `caption@=4624`, takes the run's `data_path`).

How rows are drawn: **proportional quotas, not independent draws.** Source i gets exactly
`q_i = mixture_size × w_i / Σw` rows (largest-remainder rounding, so the quotas add up to the size). A source
with at least `q_i` rows gives `q_i` distinct rows, a uniform sample without replacement; a smaller one is
repeated whole `q_i // n_i` times plus a sample of the remainder. The list is then shuffled. Why not draws
with replacement: with the paper's mix (weights = the four datasets' sizes) those would repeat some rows and
drop about a third of each dataset by chance, while quotas give every row exactly once; and quotas have no
sampling noise in the proportions. Everything comes from `random.Random` seeded with the run's seed, so every
rank (and every rerun) builds the same list before TRL's sampler shuffles it; the mixture is drawn once per
run and each epoch goes over the same rows.
"""
from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Sequence, TypeVar

from versavid_r1.tasks import PROBLEM_TYPES

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class MixtureSource:
    """One source of the mixture: the rows of `path` (None: the run's data_path), optionally only those of one
    `problem_type`, drawn in proportion to `weight`."""

    weight: float
    path: Optional[str] = None
    problem_type: Optional[str] = None

    def __post_init__(self) -> None:
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or not (
                math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"data_mixture: weight must be a number > 0, got {self.weight!r} ({self.label()})")
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"data_mixture: unknown problem_type {self.problem_type!r} (one of {PROBLEM_TYPES})")

    def label(self, default_path: Optional[str] = None) -> str:
        where = self.path or default_path or "<data_path>"
        return f"{self.problem_type}@{where}" if self.problem_type else where


def _source_from_text(text: str) -> MixtureSource:
    """`[TYPE@]PATH=WEIGHT` (command line), or a JSON object."""
    text = text.strip()
    if text.startswith("{"):
        return _source_from_dict(json.loads(text))
    left, sep, weight = text.rpartition("=")
    if not sep:
        raise ValueError(f"data_mixture: expected [TYPE@]PATH=WEIGHT, got {text!r}")
    ptype, at, path = left.partition("@")
    if not at or ptype not in PROBLEM_TYPES:  # an '@' that is part of the path
        ptype, path = "", left
    try:
        value = float(weight)
    except ValueError:
        raise ValueError(f"data_mixture: weight {weight!r} of {text!r} is not a number") from None
    return MixtureSource(weight=value, path=path.strip() or None, problem_type=ptype or None)


def _source_from_dict(item: dict) -> MixtureSource:
    unknown = sorted(set(item) - {"path", "weight", "problem_type"})
    if unknown or "weight" not in item:
        raise ValueError(f"data_mixture: each source is {{path, weight, problem_type (optional)}}, got {item!r}")
    return MixtureSource(weight=item["weight"], path=item.get("path") or None, problem_type=item.get("problem_type"))


def parse_mixture(spec: Any) -> list[MixtureSource]:
    """The sources of a `data_mixture` value: a list of mappings (YAML), of `[TYPE@]PATH=WEIGHT` strings (flags),
    or a JSON text of such a list. Raises ValueError naming the bad entry."""
    if isinstance(spec, str):
        spec = json.loads(spec) if spec.strip().startswith("[") else [spec]
    if not isinstance(spec, (list, tuple)) or not spec:
        raise ValueError(f"data_mixture: expected a non-empty list of sources, got {spec!r}")
    sources = []
    for item in spec:
        if isinstance(item, MixtureSource):
            sources.append(item)
        elif isinstance(item, dict):
            sources.append(_source_from_dict(item))
        elif isinstance(item, str):
            sources.append(_source_from_text(item))
        else:
            raise ValueError(f"data_mixture: a source is a mapping or PATH=WEIGHT text, got {item!r}")
    return sources


def quotas(weights: Sequence[float], total: int) -> list[int]:
    """Integer shares of `total` proportional to `weights` that add up to `total` (largest remainder; ties go
    to the earlier source)."""
    if total < 0:
        raise ValueError(f"mixture size must be >= 0, got {total}")
    exact = [total * w / sum(weights) for w in weights]
    out = [math.floor(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def draw(pools: Sequence[Sequence[T]], counts: Sequence[int], seed: int) -> list[tuple[int, T]]:
    """`counts[i]` items of `pools[i]` (see the module docstring), as `(source index, item)`, shuffled."""
    picked: list[tuple[int, T]] = []
    for i, (pool, count) in enumerate(zip(pools, counts)):
        if count and not pool:
            raise ValueError(f"mixture source {i} has no rows to draw {count} from")
        rng = random.Random(f"{seed}:{i}")  # per source: one source's picks do not depend on another's size
        repeats, rest = divmod(count, len(pool)) if pool else (0, 0)
        items = list(pool) * repeats + rng.sample(list(pool), rest)
        picked.extend((i, item) for item in items)
    random.Random(seed).shuffle(picked)
    return picked


@dataclass
class MixtureReport:
    """What was drawn: per source its label, weight, valid rows and rows drawn (logged, and recorded in the
    run's versavid_run.json)."""

    seed: int
    size: int
    sources: list[dict] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"data mixture: {self.size} rows per epoch from {len(self.sources)} sources (seed {self.seed})"]
        total_weight = sum(s["weight"] for s in self.sources)
        for s in self.sources:
            times = s["drawn"] / s["available"] if s["available"] else 0.0
            out.append(f"  {s['source']}: {s['drawn']} rows ({100 * s['drawn'] / max(self.size, 1):.1f}%, weight "
                       f"{s['weight']:g} = {100 * s['weight'] / total_weight:.1f}%) of {s['available']} valid rows "
                       f"(x{times:.2f})")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def build_mixture(
    sources: Sequence[MixtureSource],
    load: Callable[[str], list[dict]],
    seed: int,
    size: Optional[int] = None,
    default_path: Optional[str] = None,
) -> tuple[list[dict], MixtureReport]:
    """The mixed rows and their report. `load(path)` returns a file's validated rows (each file is read once);
    `default_path` is the path of sources without one; `size` defaults to all valid rows of all sources."""
    loaded: dict[str, list[dict]] = {}
    pools = []
    for src in sources:
        path = src.path or default_path
        if not path:
            raise ValueError(f"data_mixture source {src.label()} has no path and no data_path is set")
        if path not in loaded:
            loaded[path] = load(path)
        rows = [r for r in loaded[path] if src.problem_type is None or r.get("problem_type") == src.problem_type]
        if not rows:
            raise ValueError(f"data_mixture source {src.label(path)}: no valid rows"
                             + (f" of problem_type {src.problem_type}" if src.problem_type else ""))
        pools.append(rows)
    size = sum(len(p) for p in pools) if size is None else int(size)
    if size < 1:
        raise ValueError(f"mixture_size must be >= 1, got {size}")
    counts = quotas([s.weight for s in sources], size)
    rows = [row for _, row in draw(pools, counts, seed)]
    report = MixtureReport(seed=seed, size=size, sources=[
        {"source": s.label(default_path), "path": s.path or default_path, "problem_type": s.problem_type,
         "weight": float(s.weight), "available": len(p), "drawn": c} for s, p, c in zip(sources, pools, counts)])
    for line in report.lines():
        log.info(line)
    return rows, report
