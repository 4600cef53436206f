"""Change points on training curves and the lag between an ability and a mechanism."""

from __future__ import annotations

import numpy as np

from emergence.analysis.phases import align, change_points, smooth

STEPS = np.unique(np.round(np.geomspace(10, 10_000, 40)))


def sigmoid_curve(mid: float, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 1 / (1 + np.exp(-6 * (np.log(STEPS) - np.log(mid)))) + rng.normal(0, noise, STEPS.size)


def test_smooth_keeps_length_and_constants() -> None:
    y = np.arange(10.0)
    assert smooth(y, 3).shape == (10,) and np.allclose(smooth(np.ones(7), 5), 1)


def test_flat_noise_has_no_change_point() -> None:
    for seed in range(5):
        assert change_points(STEPS, np.random.default_rng(seed).normal(0, 0.03, STEPS.size)) == []


def test_step_change_found_at_its_step() -> None:
    y = np.where(STEPS < 1000, 0.1, 0.9) + np.random.default_rng(0).normal(0, 0.02, STEPS.size)
    pts = change_points(STEPS, y)
    assert len(pts) == 1
    assert pts[0]["step"] == STEPS[STEPS >= 1000][0] and pts[0]["jump"] > 0.7


def test_align_reports_the_lag_between_mechanism_and_ability() -> None:
    res = align(STEPS, sigmoid_curve(2000, 0.03, 0), sigmoid_curve(800, 0.03, 1))
    main = res["main"]
    assert 1500 <= main["ability_step"] <= 2600 and 600 <= main["mechanism_step"] <= 1100
    assert main["lag_steps"] > 0  # the mechanism forms first
    assert all(p["lag_steps"] is not None for p in res["pairs"])
    none = align(STEPS, sigmoid_curve(2000, 0.03, 0), np.random.default_rng(2).normal(0, 0.03, STEPS.size))
    assert none["main"] is None and none["pairs"][0]["mechanism_step"] is None
