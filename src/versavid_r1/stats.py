"""Confidence intervals for accuracies measured on a fixed question set (held-out evaluation, ablations).

- `wilson_interval(k, n)`: the Wilson score interval of a proportion k/n (good coverage at small n and
  near 0 or 1, never outside [0, 1]; the Wald interval is neither).
- `paired_difference_interval(x, y)`: the interval of the difference of two accuracies measured on the
  SAME questions (e.g. a policy with and without its video), Newcombe's method 10 for paired data
  (Newcombe 1998, Statistics in Medicine 17:2635): the Wilson limits of both proportions combined with
  the correlation of the paired outcomes. Pairing matters: the two accuracies share their questions, so
  their difference varies much less than two independent samples' would. Closed form, no random draws:
  the same outcomes give the same interval on every machine. Like every paired method it has nothing to
  go on when no question is answered differently (the interval then shrinks to about the point).
- `mean_interval(values)`: a normal-approximation interval of a mean (scores that are not 0/1, such as
  caption F1), with the t quantile for small samples.

Hand-written because the formulas are a few lines each and scipy/statsmodels are not dependencies.
"""
from __future__ import annotations

import math
from typing import Sequence

Z95 = 1.959963984540054  # the two-sided 95 % quantile of the standard normal
# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (beyond 30: the normal's).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of the proportion k/n; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, n], got k={k}, n={n}")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def paired_counts(x: Sequence[bool], y: Sequence[bool]) -> tuple[int, int, int, int]:
    """(both right, only x right, only y right, both wrong) of two outcome lists over the same questions."""
    if len(x) != len(y):
        raise ValueError(f"paired outcomes need the same questions: {len(x)} vs {len(y)}")
    a = sum(1 for u, v in zip(x, y) if u and v)
    b = sum(1 for u, v in zip(x, y) if u and not v)
    c = sum(1 for u, v in zip(x, y) if v and not u)
    return a, b, c, len(x) - a - b - c


def paired_difference_interval(x: Sequence[bool], y: Sequence[bool], z: float = Z95) -> tuple[float, float, float]:
    """(difference, lower, upper): accuracy of x minus accuracy of y on the same questions, with the
    Newcombe paired interval (method 10, no continuity correction)."""
    a, b, c, d = paired_counts(x, y)
    n = a + b + c + d
    if n == 0:
        return 0.0, -1.0, 1.0
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denominator) if denominator > 0 else 0.0
    delta = p1 - p2
    lower = delta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    upper = delta + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return delta, max(-1.0, lower), min(1.0, upper)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, lower, upper): the t interval of a mean (one value: no spread, the interval is the value)."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = _T95[n - 2] if n - 1 <= len(_T95) else Z95
    half = t * sd / math.sqrt(n)
    return mean, mean - half, mean + half
