"""The arithmetic-mirage reference study (issue #7): its quick variant, run end to end, meets the criteria.

Criteria (docs/studies/arithmetic-mirage.md), on reversed 3-digit addition and on reversed 2-digit
multiplication (`multiplication-mirage-quick`; it meets the smooth-law and the p^L ones, the others are
strict expected failures):
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


# (quick study, its task): the addition study and its multiplication companion are held to the same criteria.
STUDIES = {"addition": "arithmetic-mirage-quick", "multiplication": "multiplication-mirage-quick"}
# Multiplication does not meet the emergence criteria at this scale and budget: exact match rises smoothly
# with size, as every other metric does (docs/studies/arithmetic-mirage.md, "Multiplication"). Strict: a
# pass means the docs and these marks are out of date.
MULTIPLICATION_FAILS = "2-digit multiplication: exact match rises smoothly with size (docs, Multiplication)"


@pytest.fixture(scope="module", params=list(STUDIES))
def quick(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], str]:
    task = request.param
    out = tmp_path_factory.mktemp(STUDIES[task]) / "study"
    outcome = run_study(load_study(resolve_study(STUDIES[task])), out, progress=False)
    assert not outcome.failed, outcome.failed
    return out, read_json(out / "analysis.json"), task


@pytest.fixture
def unmet_by_multiplication(
    quick: tuple[Path, dict[str, Any], str], request: pytest.FixtureRequest
) -> tuple[Path, dict[str, Any], str]:
    """The quick study, for a criterion that multiplication does not meet: a strict expected failure there."""
    if quick[2] == "multiplication":
        request.applymarker(pytest.mark.xfail(strict=True, reason=MULTIPLICATION_FAILS))
    return quick


def _mirage(analysis: dict[str, Any], task: str) -> dict[str, dict[str, Any]]:
    block = next(m for m in analysis["mirage"] if m["task"] == task)
    return {m["metric"]: m for m in block["metrics"]}


def test_exact_match_jumps_with_a_threshold(
    unmet_by_multiplication: tuple[Path, dict[str, Any], str],
) -> None:
    _, analysis, task = unmet_by_multiplication
    em = _mirage(analysis, task)["exact_match"]
    assert em["verdict"] == "emergent", em
    thr = em["threshold"]
    assert thr["model"] in ("sigmoid", "hinge") and thr["ci"] is not None
    assert thr["ci"][0] <= thr["x0"] <= thr["ci"][1]


def test_exact_match_breaks_through_more_than_continuous(
    unmet_by_multiplication: tuple[Path, dict[str, Any], str],
) -> None:
    _, analysis, task = unmet_by_multiplication
    metrics = _mirage(analysis, task)
    b_em = metrics["exact_match"]["breakthroughness"]
    for name in CONTINUOUS:
        b = metrics[name]["breakthroughness"]
        assert b_em >= 1.5 * b, (name, b_em, b)


def test_a_continuous_metric_follows_a_smooth_law(quick: tuple[Path, dict[str, Any], str]) -> None:
    _, analysis, task = quick
    metrics = _mirage(analysis, task)
    smooth = [m for m in CONTINUOUS if metrics[m]["verdict"] != "emergent" and metrics[m]["r2_line"] >= 0.8]
    assert smooth, {m: (metrics[m]["verdict"], metrics[m]["r2_line"]) for m in CONTINUOUS}


def test_the_task_verdict_is_mirage(unmet_by_multiplication: tuple[Path, dict[str, Any], str]) -> None:
    _, analysis, task = unmet_by_multiplication
    block = next(t for t in analysis["tasks"] if t["task"] == task)
    assert block["verdict"] == "mirage", block["summary"]


def test_exact_match_follows_p_to_the_l(quick: tuple[Path, dict[str, Any], str]) -> None:
    out, analysis, task = quick
    lp = next(x for x in analysis["length_prediction"] if x["task"] == task)
    results = pd.read_parquet(out / "results.parquet")
    lengths = results.loc[results["task"] == task, "answer_len"].dropna().unique()
    # `pad: true` writes every answer with 4 digits, so there is one length: the check then runs across the
    # member × seed points (per-token accuracy p from ~0.3 to 1), one point per run and length.
    runs = {(p["member"], p["seed"]) for p in lp["points"]}
    assert len(lengths) >= 1 and len(runs) >= 12
    assert lp["agreement"]["n_points"] >= len(lengths) * len(runs)
    assert lp["agreement"]["r2"] >= 0.8, lp["agreement"]
    # The report shows it.
    assert "Exact match against answer length" in (out / "report.html").read_text()
