"""Kaplan and Chinchilla loss-law fits recover known parameters from synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from emergence.analysis import scaling


def test_kaplan_recovers_alpha_and_nc() -> None:
    rng = np.random.default_rng(0)
    n = np.logspace(5, 9, 9)
    loss = (8.8e13 / n) ** 0.076 * np.exp(rng.normal(0.0, 0.001, n.size))
    fit = scaling.fit_kaplan(n, loss)
    assert fit.status == "ok"
    assert fit.alpha == pytest.approx(0.076, abs=0.003)
    assert np.log10(fit.n_c) == pytest.approx(np.log10(8.8e13), abs=0.5)
    assert fit.r2 > 0.99
    assert fit.predict(1e7) == pytest.approx((8.8e13 / 1e7) ** 0.076, rel=0.01)
    assert fit.to_json()["law"] == "kaplan"


def test_kaplan_degenerate() -> None:
    assert scaling.fit_kaplan([1e6, 1e6], [3.0, 3.1]).status == "not_enough_data"
    assert scaling.fit_kaplan([1e6, 1e7], [3.0, 3.0]).status == "not_enough_data"
    assert scaling.fit_kaplan([], []).status == "not_enough_data"
    with pytest.raises(ValueError):
        scaling.fit_kaplan([], []).predict(1e6)


def test_chinchilla_recovers_parameters() -> None:
    rng = np.random.default_rng(1)
    nn, dd = np.meshgrid(np.logspace(6, 9, 6), np.logspace(8, 11, 6))
    nn, dd = nn.ravel(), dd.ravel()
    truth = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    loss = truth["E"] + truth["A"] / nn ** truth["alpha"] + truth["B"] / dd ** truth["beta"]
    loss = loss * np.exp(rng.normal(0.0, 0.001, loss.size))
    fit = scaling.fit_chinchilla(nn, dd, loss)
    assert fit.status == "ok"
    assert fit.alpha == pytest.approx(truth["alpha"], abs=0.03)
    assert fit.beta == pytest.approx(truth["beta"], abs=0.03)
    irreducible = fit.E
    assert irreducible == pytest.approx(truth["E"], rel=0.05)
    assert fit.r2 > 0.999
    # Predictions match the true law inside the sampled range.
    want = truth["E"] + truth["A"] / 3e7 ** truth["alpha"] + truth["B"] / 3e9 ** truth["beta"]
    assert fit.predict(3e7, 3e9) == pytest.approx(want, rel=0.01)
    n_opt, d_opt = fit.compute_optimal(1e21)
    assert 6 * n_opt * d_opt == pytest.approx(1e21)


def test_chinchilla_needs_varying_data() -> None:
    n = np.logspace(6, 9, 8)
    fit = scaling.fit_chinchilla(n, np.full(n.size, 1e9), 2.0 + 400 / n**0.3)
    assert fit.status == "not_enough_data"
    assert fit.to_json()["E"] is None
