"""The intervals of the held-out evaluation (versavid_r1.stats), against independent oracles: the Wilson
limits are the roots of the score equation; the paired interval covers the true difference about 95 % of
the time in simulation, agrees with a paired bootstrap, and is narrower than the unpaired one when the
outcomes are correlated (what pairing is for)."""
from __future__ import annotations

import math
import random

import pytest

from versavid_r1.stats import (
    Z95,
    mean_interval,
    paired_counts,
    paired_difference_interval,
    wilson_interval,
)


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (32, 128), (97, 128), (1, 1)])
def test_wilson_limits_solve_the_score_equation(k, n):
    lo, hi = wilson_interval(k, n)
    p = k / n
    assert 0.0 <= lo <= p <= hi <= 1.0
    for limit in (lo, hi):  # (p - L)^2 = z^2 L (1 - L) / n at both limits
        if limit not in (0.0, 1.0) or p not in (0.0, 1.0):
            assert (p - limit) ** 2 == pytest.approx(Z95 ** 2 * limit * (1 - limit) / n, abs=1e-12)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def _draw_pairs(rng: random.Random, n: int, cells: tuple[float, float, float, float]) -> tuple[list, list]:
    """n paired outcomes from the cell probabilities (both right, only x, only y, neither)."""
    x, y = [], []
    for _ in range(n):
        u = rng.random()
        cell = 0 if u < cells[0] else 1 if u < cells[0] + cells[1] else 2 if u < sum(cells[:3]) else 3
        x.append(cell in (0, 1))
        y.append(cell in (0, 2))
    return x, y


def test_paired_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = random.Random(0)
    cells = (0.30, 0.35, 0.05, 0.30)  # accuracies 0.65 and 0.35, positively correlated
    truth = cells[1] - cells[2]
    sims, covered, width_paired, width_unpaired = 2000, 0, 0.0, 0.0
    for _ in range(sims):
        x, y = _draw_pairs(rng, 100, cells)
        delta, lo, hi = paired_difference_interval(x, y)
        assert lo <= delta <= hi and delta == pytest.approx((sum(x) - sum(y)) / 100)
        covered += lo <= truth <= hi
        width_paired += hi - lo
        # Newcombe's unpaired hybrid (the same limits with no correlation term)
        l1, u1 = wilson_interval(sum(x), 100)
        l2, u2 = wilson_interval(sum(y), 100)
        p1, p2 = sum(x) / 100, sum(y) / 100
        width_unpaired += math.hypot(p1 - l1, u2 - p2) + math.hypot(u1 - p1, p2 - l2)
    assert 0.93 <= covered / sims <= 0.975, covered / sims
    assert width_paired < 0.9 * width_unpaired  # pairing uses the correlation of the outcomes


def test_paired_interval_agrees_with_a_paired_bootstrap():
    x, y = _draw_pairs(random.Random(1), 128, (0.22, 0.40, 0.05, 0.33))
    delta, lo, hi = paired_difference_interval(x, y)
    rng = random.Random(2)
    boots = []
    for _ in range(4000):
        idx = [rng.randrange(128) for _ in range(128)]
        boots.append(sum(x[i] - y[i] for i in idx) / 128)
    boots.sort()
    assert lo == pytest.approx(boots[int(0.025 * len(boots))], abs=0.03)
    assert hi == pytest.approx(boots[int(0.975 * len(boots))], abs=0.03)


def test_paired_edge_cases():
    assert paired_counts([True, True, False, False], [True, False, True, False]) == (1, 1, 1, 1)
    same = [True, False] * 20
    delta, lo, hi = paired_difference_interval(same, same)
    assert delta == 0.0 and lo <= 0.0 <= hi  # no discordant pair: nothing to estimate a spread from
    delta, lo, hi = paired_difference_interval([True] * 30, [False] * 30)
    assert delta == 1.0 and 0.8 < lo < 1.0 and hi == 1.0
    with pytest.raises(ValueError, match="same questions"):
        paired_difference_interval([True], [True, False])


def test_mean_interval_uses_the_t_quantile():
    mean, lo, hi = mean_interval([0.2, 0.4, 0.6])
    sd = 0.2  # sample standard deviation of the three values
    assert mean == pytest.approx(0.4) and hi - mean == pytest.approx(4.303 * sd / math.sqrt(3))
    assert mean_interval([0.5]) == (0.5, 0.5, 0.5)
