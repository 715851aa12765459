"""Domains of numeric options, checked before anything loads: one line naming the flag, the rule and the value.

A bad number used to train anyway (`--beta -1`, `--epsilon -0.2`) or save an untrained model as final
(`--num_iterations 0`), all with exit 0. Each consumer (training: `versavid_r1.training_options`,
evaluation: `versavid_r1.eval.config`) lists its options as `Bound`s and calls `check_bounds`, which raises
`ValueError("--beta must be >= 0, got -1.0")` for the first one out of its domain. Imports nothing heavy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Optional


@dataclass(frozen=True)
class Bound:
    """`name` must lie in [low, high] (`low_open` / `high_open`: the bound itself excluded); None is allowed
    when `optional`; values in `also` are allowed whatever the range (e.g. max_steps -1 = by epochs)."""

    name: str
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    also: tuple = ()

    def rule(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        text = " and ".join(parts) or "a finite number"
        extra = [f"{v}" for v in self.also] + (["unset"] if self.optional else [])
        return text + (f" (or {' or '.join(extra)})" if extra else "")

    def ok(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if value in self.also:
            return True
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))


def positive(name: str, optional: bool = False) -> Bound:
    return Bound(name, low=0, low_open=True, optional=optional)


def at_least(name: str, low: float, optional: bool = False) -> Bound:
    return Bound(name, low=low, optional=optional)


def share(name: str, optional: bool = False) -> Bound:
    return Bound(name, low=0, high=1, optional=optional)


def check_bounds(obj: Any, bounds: Iterable[Bound]) -> None:
    """Raise ValueError for the first option of `obj` outside its `Bound` (options it lacks are skipped)."""
    for b in bounds:
        if not hasattr(obj, b.name):
            continue
        value = getattr(obj, b.name)
        if not b.ok(value):
            raise ValueError(f"--{b.name} must be {b.rule()}, got {value!r}")
