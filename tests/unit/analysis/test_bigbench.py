"""BIG-bench normalised score, total improvement, linearity and breakthroughness vs hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emergence.analysis import bigbench


@pytest.mark.parametrize("n", [2, 3, 5, 9])
def test_equal_steps_give_n_minus_one(n: int) -> None:
    s = bigbench.smoothness(np.linspace(0.0, 80.0, n))
    assert s.linearity == pytest.approx(n - 1)
    assert s.breakthroughness == pytest.approx(n - 1)
    assert s.improvement == pytest.approx(80.0)
    assert not s.clipped


@pytest.mark.parametrize("n", [4, 6, 9])
def test_single_jump_linearity_sqrt_and_clipped_breakthroughness(n: int) -> None:
    y = np.zeros(n)
    y[n // 2 :] = 100.0  # one jump somewhere in the middle
    s = bigbench.smoothness(y, max_b=500.0)
    assert s.linearity == pytest.approx(math.sqrt(n - 1))
    assert s.breakthroughness == 500.0
    assert s.clipped


def test_hand_computed_example() -> None:
    # steps 10, 0, 30: I = 40; mean square 1000/3; median square 100.
    s = bigbench.smoothness([0.0, 10.0, 10.0, 40.0])
    assert s.improvement == pytest.approx(40.0)
    assert s.linearity == pytest.approx(40.0 / math.sqrt(1000.0 / 3.0))
    assert s.breakthroughness == pytest.approx(4.0)
    assert bigbench.linearity([0.0, 10.0, 10.0, 40.0]) == pytest.approx(s.linearity)
    assert bigbench.breakthroughness([0.0, 10.0, 10.0, 40.0]) == (pytest.approx(4.0), False)


def test_scale_free_for_any_magnitude() -> None:
    # L and B are ratios: the same curve at 1e-200 or 1e200 gives the same values (no overflow to inf).
    base = bigbench.smoothness([0.0, 10.0, 10.0, 40.0])
    for factor in (1e-200, 1e200):
        s = bigbench.smoothness(np.array([0.0, 10.0, 10.0, 40.0]) * factor)
        assert s.improvement == pytest.approx(40.0 * factor)
        assert s.linearity == pytest.approx(base.linearity)
        assert s.breakthroughness == pytest.approx(base.breakthroughness)


def test_falling_curve_has_negative_improvement() -> None:
    s = bigbench.smoothness([90.0, 60.0, 30.0])
    assert s.improvement == pytest.approx(-60.0)
    assert s.linearity == pytest.approx(-2.0)
    assert bigbench.total_improvement([5.0, 1.0, 9.0]) == pytest.approx(8.0)  # argmax after argmin


def test_flat_and_short_curves() -> None:
    flat = bigbench.smoothness([20.0, 20.0, 20.0])
    assert (flat.improvement, flat.linearity, flat.breakthroughness) == (0.0, 0.0, 0.0)
    short = bigbench.smoothness([50.0])
    assert short.linearity is None and short.breakthroughness is None
    nan = bigbench.smoothness([1.0, float("nan"), 3.0])
    assert nan.linearity is None


def test_normalised_score() -> None:
    raw = np.array([0.25, 0.625, 1.0])
    assert bigbench.normalised_score(raw, low=0.25, high=1.0) == pytest.approx([0.0, 50.0, 100.0])
    # Lower is better (e.g. Brier): low = worst, high = best; the score still rises as the metric improves.
    assert bigbench.normalised_score([1.0, 0.5, 0.0], low=1.0, high=0.0) == pytest.approx([0.0, 50.0, 100.0])
    assert np.isnan(bigbench.normalised_score([0.3], low=0.5, high=0.5)).all()
