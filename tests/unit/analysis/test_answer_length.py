"""The p^L answer-length check (Schaeffer et al. 2023) on synthetic items where the answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.fixtures.answer_length import LENGTHS, SIZES, P, check, length_rows

from emergence.analysis.answer_length import agreement, predict_exact_match
from emergence.analysis.emergence import AnalysisConfig, analyze_results


def test_predict_exact_match_is_p_to_the_l() -> None:
    assert predict_exact_match(0.9, 3) == pytest.approx(0.729)
    assert predict_exact_match(np.array([0.5, 1.0]), np.array([2, 7])).tolist() == [0.25, 1.0]


def test_independent_token_errors_follow_p_to_the_l() -> None:
    out = check(length_rows(correlated=False))
    assert len(out["points"]) == len(SIZES) * 3 * len(LENGTHS)
    a = out["agreement"]
    assert a["r2"] > 0.99 and abs(a["bias"]) < 0.01 and a["mae"] < 0.01
    # Every length has the same per-token p here, so the pooled p predicts just as well.
    assert out["pooled"]["r2"] > 0.99
    # Whole-test-set exact match (item-weighted over lengths) is predicted too.
    for o in out["overall"]:
        assert o["predicted"] == pytest.approx(o["measured"], abs=0.02)
    assert [o["member"] for o in out["overall"]] == ["s", "m", "l"]


def test_correlated_token_errors_break_p_to_the_l() -> None:
    out = check(length_rows(correlated=True))
    a = out["agreement"]
    # All-or-nothing answers: token accuracy = exact match = p, while p^L is far lower. The prediction fails,
    # and the sign of the bias says how: measured above predicted (errors cluster in the same answers).
    assert a["bias"] > 0.1 and a["r2"] < 0.5 and a["max_abs_error"] > 0.2
    long = next(r for r in out["rows"] if r["member"] == "s" and r["length"] == 4)
    assert long["measured"] == pytest.approx(P["s"], abs=0.03)
    assert long["predicted"] == pytest.approx(P["s"] ** 4, abs=0.03)


def test_per_seed_prediction_is_mean_of_p_to_the_l_not_mean_p() -> None:
    base = dict(member="a", n_params=1.0, task="t", shots=0, answer_len=2, n=10)
    df = pd.DataFrame(
        [
            base | {"seed": seed, "metric": metric, "value": float(seed)}
            for seed in (0, 1)
            for metric in ("token_accuracy", "exact_match")
        ]
    )
    (row,) = check(df)["rows"]
    # Jensen: mean over seeds of p^2 is 0.5, (mean p)^2 would be 0.25; only the former matches measured EM.
    assert row["predicted"] == pytest.approx(0.5) and row["measured"] == pytest.approx(0.5)


def test_agreement_weights_points_by_items() -> None:
    pred, meas = np.array([0.1, 0.5, 0.9, 0.0]), np.array([0.1, 0.5, 0.9, 1.0])
    heavy = agreement(pred, meas, np.array([1000, 1000, 1000, 1]))
    flat = agreement(pred, meas)
    assert heavy["r2"] > 0.99 > flat["r2"]
    assert flat["max_abs_error"] == pytest.approx(1.0) and flat["n_points"] == 4
    assert agreement(np.array([0.2, 0.3]), np.array([0.5, 0.5]))["r2"] is None  # constant measurements
    assert agreement(np.array([]), np.array([]))["r2"] is None


def test_analyze_results_carries_the_check_per_task() -> None:
    out = analyze_results(length_rows(correlated=False), AnalysisConfig(n_boot=20, fit_time_axis=False))
    (lp,) = out["length_prediction"]
    assert lp["task"] == "addition" and lp["shots"] == 0 and lp["group"] == {}
    assert lp["agreement"]["r2"] > 0.99 and len(lp["rows"]) == len(SIZES) * len(LENGTHS)
    # Per-length rows stay out of the whole-test-set curves.
    em = next(e for e in out["entries"] if e["metric"] == "exact_match")
    assert em["curves"]["n_params"]["n_seeds"] == [3, 3, 3]
