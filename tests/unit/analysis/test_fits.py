"""Shape fits: threshold recovery with a covering bootstrap CI, model choice, criteria, degenerate inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emergence.analysis import fits

U = np.linspace(4.0, 8.0, 9)  # nine scale points, half a decade apart


def _sigmoid_data(seed: int, u0: float = 6.3, k: float = 3.0, noise: float = 0.03, n_seeds: int = 4):
    rng = np.random.default_rng(seed)
    u = np.repeat(U, n_seeds)
    y = 0.02 + 0.9 / (1.0 + np.exp(-k * (u - u0))) + rng.normal(0.0, noise, u.size)
    return 10**u, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigmoid_threshold_recovered_and_ci_covers_it(seed: int) -> None:
    x, y = _sigmoid_data(seed)
    out = fits.fit_to_json(x, y, n_boot=100, ci=0.95, seed=seed)
    assert out["status"] == "ok"
    assert out["best"] == "sigmoid"
    th = out["threshold"]
    # Tolerance: 0.15 decade, a third of the spacing between scale points.
    assert abs(th["log10_x0"] - 6.3) < 0.15
    lo, hi = th["ci_log10"]
    assert lo <= 6.3 <= hi
    assert th["x0"] == pytest.approx(10 ** th["log10_x0"])
    assert th["ci"][0] == pytest.approx(10**lo) and th["ci"][1] == pytest.approx(10**hi)
    assert th["n_boot_ok"] > 90
    assert th["bracket"][0] <= th["x0"] <= th["bracket"][1]
    assert th["bracket"] == [pytest.approx(10**6.0), pytest.approx(10**6.5)]
    assert out["delta_vs_line"] > 10


def test_decreasing_sigmoid_threshold() -> None:
    x, y = _sigmoid_data(3, u0=5.5)
    out = fits.fit_to_json(x, 1.0 - y, n_boot=0)
    assert out["best"] == "sigmoid"
    assert abs(out["threshold"]["log10_x0"] - 5.5) < 0.15
    assert out["threshold"]["ci"] is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_line_chosen_for_linear_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    u = np.repeat(U, 3)
    y = 0.1 * u - 0.3 + rng.normal(0.0, 0.02, u.size)
    out = fits.fit_to_json(10**u, y, n_boot=20)
    assert out["best"] == "line"
    assert out["delta_vs_line"] == 0.0
    # A threshold of a model that lost to the line comes without a CI.
    assert out["threshold"] is None or (
        out["threshold"]["from_best"] is False and out["threshold"]["ci"] is None
    )
    line = out["models"]["line"]["params"]
    assert line["b"] == pytest.approx(0.1, abs=0.01)


def test_hinge_chosen_for_hinge_data() -> None:
    rng = np.random.default_rng(0)
    u = np.repeat(np.linspace(4.0, 8.0, 13), 3)
    y = 0.05 + 0.4 * np.maximum(0.0, u - 6.0) + rng.normal(0.0, 0.01, u.size)
    out = fits.fit_to_json(10**u, y, n_boot=30)
    assert out["best"] == "hinge"
    assert abs(out["threshold"]["log10_x0"] - 6.0) < 0.1


def test_information_criteria_formulas() -> None:
    rng = np.random.default_rng(0)
    u = np.linspace(0.0, 3.0, 12)
    y = 1.0 + 2.0 * u + rng.normal(0.0, 0.1, u.size)
    m = fits.fit_line(u, y)
    n, k = u.size, 3
    ll = n * math.log(m.rss / n)
    assert m.aic == pytest.approx(ll + 2 * k)
    assert m.aicc == pytest.approx(ll + 2 * k + 2 * k * (k + 1) / (n - k - 1))
    assert m.bic == pytest.approx(ll + k * math.log(n))
    assert m.r2 == pytest.approx(1 - m.rss / np.sum((y - y.mean()) ** 2))
    assert fits.resolve_criterion("auto", 12) == "aicc"
    assert fits.resolve_criterion("auto", 1000) == "aic"
    assert fits.resolve_criterion("bic", 12) == "bic"


def test_degenerate_inputs_do_not_crash() -> None:
    assert fits.fit_to_json([1e5, 1e6], [0.1, 0.2])["status"] == "not_enough_data"
    assert fits.fit_to_json([], [])["status"] == "not_enough_data"
    assert fits.fit_to_json([1e5] * 5, [0.1, 0.2, 0.3, 0.4, 0.5])["status"] == "not_enough_data"
    const = fits.fit_to_json(10**U, np.full(U.size, 0.25))
    assert const["status"] == "constant" and const["best"] == "line" and const["threshold"] is None
    nan = fits.fit_to_json(10**U, np.full(U.size, np.nan))
    assert nan["status"] == "not_enough_data"
    # Non-positive x cannot go on a log axis and is dropped, not fatal.
    out = fits.fit_to_json(np.r_[0.0, -1.0, 10**U], np.r_[0.5, 0.5, U / 10])
    assert out["n_obs"] == U.size
    # Three points: only the line has enough distinct x; four: line and hinge.
    three = fits.fit_curve(10 ** U[:3], [0.1, 0.2, 0.35])
    assert three.status == "not_enough_data"  # 3 observations < 4
    four = fits.fit_curve(10 ** np.repeat(U[:4], 2), np.repeat([0.0, 0.0, 0.1, 0.9], 2))
    assert four.models["sigmoid"].status == "not_enough_data"
    assert four.models["hinge"].ok


def test_single_seed_has_no_bootstrap_ci() -> None:
    x, y = _sigmoid_data(0, n_seeds=1, noise=0.01)
    out = fits.fit_to_json(x, y, n_boot=50)
    assert out["threshold"] is not None
    assert out["threshold"]["ci"] is None and out["threshold"]["n_boot_ok"] == 0


def test_curve_grid_for_plotting() -> None:
    x, y = _sigmoid_data(1)
    out = fits.fit_to_json(x, y, n_boot=0)
    assert len(out["curve"]["x"]) == 50
    assert out["curve"]["x"][0] == pytest.approx(1e4) and out["curve"]["x"][-1] == pytest.approx(1e8)
    assert all(v is not None for v in out["curve"]["y"])
