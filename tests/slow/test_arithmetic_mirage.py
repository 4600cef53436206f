"""The arithmetic-mirage reference study (issue #7): its quick variant, run end to end, meets the criteria.

Criteria (docs/studies/arithmetic-mirage.md), on 3-digit reversed addition:
- exact match is emergent, with a sigmoid/hinge threshold and a bootstrap CI over seeds, and its
  breakthroughness B is clearly above that of every continuous metric;
- a continuous metric (answer log-probability, token accuracy or edit distance) is not emergent and is fitted
  well by a smooth law: a straight line in log parameters with R² ≥ 0.8; the task verdict is "mirage";
- the answer-length prediction exact match ≈ p^L is checked against the measured per-length exact match, and
  agrees (item-weighted R² ≥ 0.8 over member × seed × length; with `pad: true` a single length, L = 4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from emergence.io import read_json
from emergence.studies import resolve_study
from emergence.sweep.config import load_study
from emergence.sweep.runner import run_study

pytestmark = pytest.mark.slow

CONTINUOUS = ("answer_logprob", "token_accuracy", "edit_distance")


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("arithmetic-mirage") / "study"
    outcome = run_study(load_study(resolve_study("arithmetic-mirage-quick")), out, progress=False)
    assert not outcome.failed, outcome.failed
    return out, read_json(out / "analysis.json")


def _mirage(analysis: dict[str, Any], task: str) -> dict[str, dict[str, Any]]:
    block = next(m for m in analysis["mirage"] if m["task"] == task)
    return {m["metric"]: m for m in block["metrics"]}


def test_exact_match_jumps_with_a_threshold(quick: tuple[Path, dict[str, Any]]) -> None:
    _, analysis = quick
    em = _mirage(analysis, "addition")["exact_match"]
    assert em["verdict"] == "emergent", em
    thr = em["threshold"]
    assert thr["model"] in ("sigmoid", "hinge") and thr["ci"] is not None
    assert thr["ci"][0] <= thr["x0"] <= thr["ci"][1]


def test_exact_match_breaks_through_more_than_continuous(quick: tuple[Path, dict[str, Any]]) -> None:
    _, analysis = quick
    metrics = _mirage(analysis, "addition")
    b_em = metrics["exact_match"]["breakthroughness"]
    for name in CONTINUOUS:
        b = metrics[name]["breakthroughness"]
        assert b_em >= 1.5 * b, (name, b_em, b)


def test_a_continuous_metric_follows_a_smooth_law(quick: tuple[Path, dict[str, Any]]) -> None:
    _, analysis = quick
    metrics = _mirage(analysis, "addition")
    smooth = [m for m in CONTINUOUS if metrics[m]["verdict"] != "emergent" and metrics[m]["r2_line"] >= 0.8]
    assert smooth, {m: (metrics[m]["verdict"], metrics[m]["r2_line"]) for m in CONTINUOUS}
    task = next(t for t in analysis["tasks"] if t["task"] == "addition")
    assert task["verdict"] == "mirage", task["summary"]


def test_exact_match_follows_p_to_the_l(quick: tuple[Path, dict[str, Any]]) -> None:
    out, analysis = quick
    lp = next(x for x in analysis["length_prediction"] if x["task"] == "addition")
    results = pd.read_parquet(out / "results.parquet")
    lengths = results.loc[results["task"] == "addition", "answer_len"].dropna().unique()
    # `pad: true` writes every answer with 4 digits, so there is one length: the check then runs across the
    # member × seed points (per-token accuracy p from ~0.3 to 1), one point per run and length.
    runs = {(p["member"], p["seed"]) for p in lp["points"]}
    assert len(lengths) >= 1 and len(runs) >= 12
    assert lp["agreement"]["n_points"] >= len(lengths) * len(runs)
    assert lp["agreement"]["r2"] >= 0.8, lp["agreement"]
    # The report shows it.
    assert "Exact match against answer length" in (out / "report.html").read_text()
