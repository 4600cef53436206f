"""Verdict stability, design power and training-time threshold gating (analysis/stability.py, verdict.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from emergence.analysis.emergence import AnalysisConfig, analyze_results
from emergence.analysis.stability import design_block, rule_on_batch, simulate_power
from emergence.analysis.verdict import MARGINS

FAST = AnalysisConfig(n_boot=20, fit_time_axis=False, stability_resamples=100, power_sims=100)


def _rows(
    sizes: np.ndarray, means: list[float], seeds: int, items: int, seed: int = 0, step: int = 1000
) -> pd.DataFrame:
    """Exact match measured on `items` items per run: binomial draws around each member's mean."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, (n, p) in enumerate(zip(sizes, means, strict=True)):
        for s in range(seeds):
            v = rng.binomial(items, p) / items
            rows.append(
                dict(
                    run_id=f"m{i}-s{s}",
                    member=f"m{i}",
                    n_params=float(n),
                    flops=6.0 * n * step,
                    step=step,
                    seed=s,
                    task="t",
                    shots=0,
                    metric="exact_match",
                    value=v,
                    stderr=float(np.sqrt(max(v * (1 - v), 1e-4) / items)),
                    n=items,
                )
            )
    return pd.DataFrame(rows)


def _verdict(result: dict[str, Any]) -> dict[str, Any]:
    (entry,) = result["entries"]
    return entry["verdict"]


def test_a_clear_jump_is_emergent_with_high_stability() -> None:
    sizes = np.logspace(3, 5, 9)
    means = [0.0, 0.0, 0.01, 0.01, 0.02, 0.6, 0.9, 0.97, 0.99]
    v = _verdict(analyze_results(_rows(sizes, means, seeds=3, items=200), FAST))
    assert v["point_verdict"] == "emergent"
    assert v["verdict"] == v["label"] == "emergent"
    assert v["stability"]["p"]["emergent"] >= 0.9 and v["stability"]["n"] == 100
    assert v["design"]["status"] == "ok" and v["design"]["power"]["p_emergent"] >= 0.5
    # Every margin is reported against its cut, in the rule's order.
    assert [m["criterion"] for m in v["margins"]] == list(MARGINS)
    assert all(m["holds"] for m in v["margins"])
    assert v["margins"][2]["text"].startswith("ΔAICc ") and "against ≥ 4" in v["margins"][2]["text"]


def test_three_sizes_cannot_see_a_jump_and_say_so() -> None:
    """0.01 → 1.00 → 1.00: a sigmoid needs five sizes, so the verdict is never "smooth"."""
    out = analyze_results(_rows(np.array([1e3, 1e4, 1e5]), [0.01, 1.0, 1.0], seeds=3, items=200), FAST)
    v = _verdict(out)
    assert v["point_verdict"] == "smooth"  # what the bare rule says
    assert v["verdict"] == "inconclusive" and v["label"] == "inconclusive (design)"
    assert v["design"]["status"] == "underpowered"
    assert "3 sizes" in v["design"]["reasons"][0]
    (task,) = out["tasks"]
    assert task["label"] == "inconclusive (design)"


def test_a_call_that_resamples_split_is_borderline_with_its_deciding_margin() -> None:
    # A logistic in log N rising 10 % → 90 % over 1.1 decades: near the breakthroughness cut, so which
    # seeds and items are drawn decides between "emergent" and "smooth".
    sizes, u = np.logspace(3, 5, 9), np.linspace(0, 2, 9)
    v = _verdict(analyze_results(_rows(sizes, list(1 / (1 + np.exp(-4 * (u - 1)))), 3, 200), FAST))
    assert v["design"]["status"] == "ok"
    assert v["stability"]["p_top"] < 0.8 and set(v["stability"]["p"]) == {"emergent", "smooth"}
    assert v["verdict"] == "borderline" and v["point_verdict"] == "smooth"
    assert v["deciding"].startswith("B ") and v["deciding"] in {m["text"] for m in v["margins"]}


def test_rule_on_the_unresampled_data_matches_the_verdict() -> None:
    sizes = np.logspace(3, 5, 9)
    for means in ([0.0, 0.0, 0.0, 0.01, 0.02, 0.7, 0.95, 0.99, 1.0], list(np.linspace(0.02, 0.9, 9))):
        df = _rows(sizes, means, seeds=3, items=200)
        v = _verdict(analyze_results(df, FAST))
        u = np.log10(df["n_params"].to_numpy())
        member = np.searchsorted(np.unique(u), u)
        ys = df["value"].to_numpy()[None, :]
        labels, held = rule_on_batch(u, member, ys, np.ones_like(ys), 0.0, 1.0, "aicc", FAST)
        assert labels == [v["point_verdict"]]
        assert held.shape == (1, len(MARGINS))


def test_power_grows_with_sizes_and_falls_for_a_narrow_span() -> None:
    cfg = AnalysisConfig(power_sims=150)
    wide = simulate_power(np.linspace(3, 5, 9), 3, 200, 0, 150, cfg)["p_emergent"]
    few = simulate_power(np.linspace(3, 5, 5), 3, 200, 0, 150, cfg)["p_emergent"]
    narrow = simulate_power(np.linspace(3, 3.4, 5), 1, 50, 0, 150, cfg)["p_emergent"]
    assert wide > few and wide > 0.8
    assert narrow < wide
    block = design_block(list(np.logspace(3, 3.4, 5)), 1, 50, AnalysisConfig(power_sims=150, min_power=0.99))
    assert block["status"] == "underpowered" and "simulations" in block["reasons"][0]


def test_training_time_threshold_only_for_curves_that_leave_chance() -> None:
    steps = [1, 4, 16, 64, 256, 1024, 4096]
    rows = []
    sizes = np.logspace(3, 5, 5)
    for i, n in enumerate(sizes):
        for s in range(2):
            for j, step in enumerate(steps):
                # m0 stays at 0.02 with a wiggle; the others rise from 0 to 0.95 around step 256.
                if i == 0:
                    v = 0.02 + 0.01 * ((j + s) % 2)
                else:
                    v = 0.95 / (1 + np.exp(-3 * (np.log10(step) - np.log10(256) + 0.2 * (i - 2))))
                rows.append(
                    dict(
                        run_id=f"m{i}-s{s}",
                        member=f"m{i}",
                        n_params=float(n),
                        flops=float(n),
                        step=step,
                        seed=s,
                        task="t",
                        shots=0,
                        metric="exact_match",
                        value=float(v),
                        stderr=0.01,
                        n=200,
                    )
                )
    out = analyze_results(pd.DataFrame(rows), AnalysisConfig(n_boot=10, stability_resamples=0, power_sims=0))
    (entry,) = out["entries"]
    assert entry["fits_step"]["m0"]["threshold"] is None
    assert "no training-time threshold" in entry["fits_step"]["m0"]["threshold_note"]
    assert entry["fits_step"]["m3"]["threshold"] is not None


def test_stability_is_deterministic() -> None:
    df = _rows(np.logspace(3, 5, 7), [0.0, 0.0, 0.1, 0.5, 0.9, 0.97, 1.0], seeds=3, items=100)
    a, b = analyze_results(df, FAST), analyze_results(df, FAST)
    assert _verdict(a)["stability"] == _verdict(b)["stability"]


def test_switched_off_stability_keeps_the_rule() -> None:
    df = _rows(np.logspace(3, 5, 7), [0.0, 0.0, 0.1, 0.5, 0.9, 0.97, 1.0], seeds=3, items=100)
    v = _verdict(analyze_results(df, AnalysisConfig(n_boot=10, stability_resamples=0, fit_time_axis=False)))
    assert v["stability"] is None and v["verdict"] == v["point_verdict"]


@pytest.mark.parametrize("bar", [0.4, 1.5])
def test_bad_bar_is_refused(bar: float) -> None:
    with pytest.raises(ValueError, match="stability_bar"):
        AnalysisConfig(stability_bar=bar)
