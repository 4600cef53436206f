"""Criticality: avalanches, power-law fits, branching ratio and Jacobian spectra on simulated data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import gammaln

from emergence.analysis import criticality as C


def driven_branching_network(
    m: float, n_units: int = 1_000_000, n_seq: int = 800, seq: int = 2000, drive: float = 0.002, seed: int = 0
) -> np.ndarray:
    """Population counts (n_seq, seq) of a driven branching network (Haldeman & Beggs 2005, annealed).

    Every event triggers Poisson(m) events next step at uniformly random units (an event landing on an already
    active unit is lost, so a small network is slightly subcritical); each sequence receives Poisson(`drive`)
    spontaneous events per step. A weak drive separates the time scales so avalanches rarely overlap.
    """
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_seq, seq), dtype=np.int64)
    a = np.zeros(n_seq, dtype=np.int64)
    for t in range(seq):
        kids = rng.poisson(m * a) + rng.poisson(drive, size=n_seq)
        s = np.repeat(np.arange(n_seq), kids)
        ids = np.unique(s * n_units + rng.integers(0, n_units, size=s.size))  # distinct (sequence, unit)
        a = np.bincount(ids // n_units, minlength=n_seq)
        counts[:, t] = a
    return counts


def discrete_power_law(alpha: float, n: int, rng: np.random.Generator, kmax: int = 10**6) -> np.ndarray:
    """Exact samples of P(k) ∝ k^-alpha on 1..kmax by inverse CDF."""
    k = np.arange(1, kmax + 1, dtype=np.float64)
    c = np.cumsum(k**-alpha)
    return k[np.searchsorted(c / c[-1], rng.random(n))]


def test_avalanches_match_the_docstring_example() -> None:
    counts = np.array([[0, 0, 3, 1, 4, 0, 0, 2, 0, 5, 1, 0]])
    s, d = C.avalanches(counts)
    assert s.tolist() == [8, 2, 6] and d.tolist() == [3, 1, 2]
    # Runs touching an edge are censored and dropped unless asked for.
    s, d = C.avalanches(np.array([[1, 1, 0, 2, 0, 3]]))
    assert s.tolist() == [2] and d.tolist() == [1]
    s, _ = C.avalanches(np.array([[1, 1, 0, 2, 0, 3]]), drop_edges=False)
    assert s.tolist() == [2, 2, 3]


def test_rebin_and_mean_iei() -> None:
    counts = np.array([[1, 0, 0, 1, 0, 0, 1, 0]])
    assert C.mean_iei_bin(counts) == 3  # 8 bins / 3 events
    assert C.rebin(counts, 3).tolist() == [[1, 1]]


def test_component_avalanches_label_token_by_layer_clusters() -> None:
    grid = np.zeros((1, 6, 3), dtype=int)  # (S, T, L)
    grid[0, 1, 0] = 2
    grid[0, 2, 0] = 1
    grid[0, 2, 1] = 1  # connected to (2, 0)
    grid[0, 5, 2] = 4  # isolated
    s, d = C.component_avalanches(grid)
    assert sorted(zip(s.tolist(), d.tolist(), strict=True)) == [(4, 1), (4, 2)]


def test_circular_shift_null_keeps_each_neurons_count() -> None:
    rng = np.random.default_rng(0)
    ev = rng.random((5, 40, 7)) < 0.1
    null = C.circular_shift_null(ev, rng)
    assert (null.sum(axis=1) == ev.sum(axis=1)).all()
    assert not (null == ev).all()


def test_rate_matched_threshold_gives_the_rate() -> None:
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(8, 64, 100))
    mean, std = C.zscore_params(rng.normal(size=(4, 64, 100)))
    ev = C.events_from_activations(acts, mean, std, event_rate=0.01)
    assert ev.mean() == pytest.approx(0.01, abs=0.001)


@pytest.mark.parametrize("alpha", [1.5, 2.5, 3.5])
def test_power_law_fit_recovers_alpha(alpha: float) -> None:
    x = discrete_power_law(alpha, 20_000, np.random.default_rng(1))
    fit = C.fit_power_law(x)
    assert abs(fit["alpha"] - alpha) < 0.1, fit
    assert fit["alpha_stderr"] < 0.05
    assert fit["verdict"] != "rejected"


def test_power_law_fit_prefers_lognormal_on_lognormal_data() -> None:
    """The KS-chosen xmin moves into the tail, where a wide lognormal looks straight: the preference is then
    right in sign but not always significant (σ = 1: p 0.02–0.6 over seeds). A narrow lognormal, or the whole
    range (xmin fixed at 1), is rejected clearly."""
    x = np.round(np.random.default_rng(0).lognormal(mean=2.0, sigma=0.5, size=20_000)) + 1
    fit = C.fit_power_law(x)
    assert fit["vs"]["lognormal"]["R"] < 0 and fit["vs"]["lognormal"]["p"] < 0.1
    assert fit["verdict"] == "rejected"
    for seed in range(3):
        wide = np.round(np.random.default_rng(seed).lognormal(mean=2.0, sigma=1.0, size=20_000)) + 1
        assert C.fit_power_law(wide)["vs"]["lognormal"]["R"] < 0
        whole = C.fit_power_law(wide, xmin=1)
        assert whole["vs"]["lognormal"]["p"] < 1e-3 and whole["verdict"] == "rejected"


def test_branching_size_distribution_is_not_a_power_law_rejection() -> None:
    """Exact sizes of a critical Poisson branching process (Borel law, P(S) ~ S^-3/2) pass the LR tests."""
    k = np.arange(1, 10**6 + 1)
    p = np.exp(-k + (k - 1) * np.log(k) - gammaln(k + 1))
    c = np.cumsum(p)
    x = k[np.searchsorted(c / c[-1], np.random.default_rng(3).random(5000))]
    fit = C.fit_power_law(x)
    assert abs(fit["alpha"] - 1.5) < 0.05 and fit["verdict"] != "rejected"


def test_driven_branching_network_critical_vs_subcritical() -> None:
    """At m = 1: τ_S ≈ 3/2, power law not rejected, crackling relation holds (REFERENCES §11: 1.48, ratio
    1.82). At m = 0.9 the power law is rejected. Over seeds 0–9 the m = 1 power law was not rejected in 8/10
    (the LR test's size at p = 0.1 plus finite-size effects); the seed is fixed so the test is
    deterministic."""
    crit = C.avalanche_statistics(driven_branching_network(1.0, seed=2), bin_size=1)
    assert crit["n_avalanches"] > 2000
    assert abs(crit["size"]["alpha"] - 1.5) < 0.05
    assert crit["size"]["verdict"] != "rejected"
    assert 1.6 < crit["crackling"]["predicted"] < 2.4
    assert crit["crackling"]["relative_error"] < 0.4
    assert crit["consistent"]

    sub = C.avalanche_statistics(driven_branching_network(0.9, seed=2), bin_size=1)
    assert sub["size"]["verdict"] == "rejected"
    assert sub["size"]["vs"]["lognormal"]["p"] < 0.01
    assert not sub["consistent"]


def test_neuron_scan_reports_exponents_against_subsample_size() -> None:
    rng = np.random.default_rng(0)
    ev = rng.random((16, 128, 512)) < 0.01
    scan = C.neuron_avalanche_scan(ev, [16, 64, 128], rng, n_draws=2, bin_size=1)
    assert [r["n_neurons"] for r in scan] == [16, 64, 128]
    occ = [r["occupancy"] for r in scan]
    assert occ[0] < occ[1] < occ[2]  # more neurons, fewer empty bins
    # Independent Poisson-like events: avalanches are short and a power law is not favoured.
    assert all(r["size"]["verdict"] != "power_law" for r in scan if r["size"].get("alpha") is not None)


def poisson_branching(m: float, drive: float, n_trials: int, steps: int, seed: int) -> np.ndarray:
    """Population activity A_{t+1} ~ Poisson(m·A_t + drive), started at the stationary mean."""
    rng = np.random.default_rng(seed)
    a = np.full(n_trials, drive / (1 - m))
    out = np.zeros((n_trials, steps))
    for t in range(steps):
        a = rng.poisson(m * a + drive).astype(np.float64)
        out[:, t] = a
    return out


@pytest.mark.parametrize("m", [0.9, 0.98])
def test_branching_ratio_recovers_m_under_subsampling(m: float) -> None:
    full = poisson_branching(m, drive=1000 * (1 - m), n_trials=32, steps=512, seed=0)
    observed = np.random.default_rng(1).binomial(full.astype(np.int64), 0.01)  # 1 % of the units
    res = C.branching_ratio(observed, kmax=64 if m < 0.95 else 128, numboot=20)
    assert abs(res["m"] - m) < 0.05, res
    assert res["m_naive"] < m - 0.3  # the naive estimate is biased towards 0 by subsampling
    assert res["m_stderr"] is not None


def gauss_mean(f, q: float) -> float:
    """E f(√q z), z ~ N(0, 1), by Gauss-Hermite quadrature."""
    z, w = np.polynomial.hermite_e.hermegauss(101)
    return float((w / w.sum() * f(math.sqrt(q) * z)).sum())


@pytest.mark.parametrize(("sigma_w", "sign"), [(0.5, -1), (1.0, 0), (3.0, 1)])
def test_jacobian_measures_on_random_tanh_networks(sigma_w: float, sign: int) -> None:
    """χ matches mean-field theory σ_w² E[φ'(h)²] at each layer's variance; λ ≈ ½ ln χ (Poole et al. 2016)."""
    N, L = 300, 20
    g = torch.Generator().manual_seed(1)
    Ws = [torch.randn(N, N, generator=g, dtype=torch.float64) * sigma_w / math.sqrt(N) for _ in range(L)]
    layers = [lambda h, W=W: torch.tanh(h) @ W.T for W in Ws]
    x = torch.randn(1, N, generator=g, dtype=torch.float64)
    res = C.jacobian_spectrum(layers, x, n_probes=4, generator=g)
    theory = []
    for f in layers:
        theory.append(sigma_w**2 * gauss_mean(lambda h: np.cosh(h) ** -4, float(x.pow(2).mean())))
        x = f(x)
    chi, theory = np.array(res.chi), np.array(theory)
    assert np.abs(chi[5:] / theory[5:] - 1).mean() < 0.1
    mean_half_log = 0.5 * np.log(chi).mean()
    assert abs(res.lyapunov - mean_half_log) < 0.05
    if sign < 0:
        assert res.lyapunov < -0.5
    elif sign > 0:
        assert res.lyapunov > 0.2
    else:
        assert abs(res.lyapunov) < 0.15  # χ → 1 from below as q → 0 (slowly at σ_w = 1)
    growth = C.apjn_growth(res.log_apjn)
    assert growth["shape"] == ("power_law" if sign == 0 else "exponential")


def test_residual_branch_chi_of_identity_plus_linear() -> None:
    W = torch.randn(64, 64, dtype=torch.float64) * 0.3 / 8  # branch with χ = 0.09
    res = C.jacobian_spectrum(
        [lambda h: h + h @ W.T], torch.randn(2, 64, dtype=torch.float64), 16, residual=True
    )
    assert res.chi_branch[0] == pytest.approx(0.09, rel=0.3)
    assert res.chi[0] == pytest.approx(1.09, rel=0.1)
