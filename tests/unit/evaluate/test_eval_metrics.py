"""Metrics on hand-written items (exact numbers), the registry, and bootstrap/aggregate statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emergence.errors import UserError
from emergence.evaluate.lm import LLResult
from emergence.evaluate.metrics import (
    METRICS,
    ItemResult,
    aggregate,
    bootstrap_stderr,
    bootstrap_stderr_2way,
    levenshtein,
    metrics_for,
    normalized_edit_distance,
)

LN = math.log


def ll(*tokens: tuple[float, bool, int]) -> LLResult:
    """LLResult from (prob, greedy, rank) per token."""
    return LLResult.from_tokens(
        [LN(p) for p, _, _ in tokens], [g for _, g, _ in tokens], [r for *_, r in tokens]
    )


def m(name: str, item: ItemResult) -> float:
    return METRICS.get(name)(item)


# A generate item: target "123", model generated "124", teacher-forced probs 0.5, 0.25 (rank 3), 0.8.
GEN = ItemResult(
    target="123",
    generation="124",
    target_ll=ll((0.5, True, 1), (0.25, False, 3), (0.8, True, 1)),
)


def test_generate_metrics_exact_numbers() -> None:
    assert m("exact_match", GEN) == 0.0
    assert m("exact_match", ItemResult(target="123", generation=" 123 ")) == 1.0  # whitespace only
    assert m("exact_match", ItemResult(target="abc", generation="ABC")) == 0.0  # case counts
    assert m("token_accuracy", GEN) == pytest.approx(2 / 3)
    assert m("edit_distance", GEN) == pytest.approx(1 / 3)
    assert m("edit_similarity", GEN) == pytest.approx(2 / 3)
    assert m("answer_logprob", GEN) == pytest.approx(LN(0.5 * 0.25 * 0.8))
    assert m("answer_logprob_per_token", GEN) == pytest.approx(LN(0.1) / 3)
    assert m("prob_correct", GEN) == pytest.approx(0.1)
    assert m("rank", GEN) == pytest.approx((1 + 3 + 1) / 3)


def test_edit_distance_definition() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("abc", "abc") == 0
    assert normalized_edit_distance("", "") == 0.0
    assert normalized_edit_distance("", "12") == 1.0
    assert normalized_edit_distance("12345", "12") == pytest.approx(3 / 5)  # divided by the longer length
    assert normalized_edit_distance("1324", "1234") == pytest.approx(2 / 4)  # a swap is two substitutions


# A choice item: choices A (logprob ln .2), BB (ln .6, correct), C (ln .2).
CHOICE = ItemResult(
    target="BB",
    choices=("A", "BB", "C"),
    choice_lls=(ll((0.2, False, 2)), ll((0.6, True, 1), (1.0, True, 1)), ll((0.2, False, 2))),
)


def test_choice_metrics_exact_numbers() -> None:
    p = np.array([0.2, 0.6, 0.2])  # softmax of log-probs = normalised probs
    assert m("accuracy", CHOICE) == 1.0
    assert m("rank", CHOICE) == 1.0
    assert m("prob_correct", CHOICE) == pytest.approx(0.6)
    assert m("brier", CHOICE) == pytest.approx(float(np.sum((p - [0, 1, 0]) ** 2)))  # 0.04+0.16+0.04
    assert m("brier", CHOICE) == pytest.approx(0.24)
    # per character: A: ln .2 / 1 = -1.609, BB: ln .6 / 2 = -0.255, C: -1.609 → still correct
    assert m("accuracy_norm", CHOICE) == 1.0
    # target-based metrics read the correct choice's score
    assert m("answer_logprob", CHOICE) == pytest.approx(LN(0.6))
    assert m("token_accuracy", CHOICE) == 1.0


def test_length_normalisation_changes_the_winner() -> None:
    # Totals: "long" 0.3 < "x" 0.4; per character "long" wins because its log-prob is spread over 4 chars.
    item = ItemResult(
        target="long",
        choices=("long", "x"),
        choice_lls=(ll((0.3, True, 1)), ll((0.4, True, 1))),
    )
    assert m("accuracy", item) == 0.0  # 0.3 < 0.4 in total
    assert m("accuracy_norm", item) == 1.0  # ln(.3)/4 = -0.30 > ln(.4)/1 = -0.92
    assert m("rank", item) == 2.0


def test_ties_score_chance() -> None:
    same = ll((0.5, True, 1))
    item = ItemResult(target="b", choices=("a", "b", "c", "d"), choice_lls=(same, same, same, same))
    assert m("accuracy", item) == pytest.approx(0.25)  # expected accuracy under random tie-breaking
    assert m("rank", item) == pytest.approx(2.5)  # mean of ranks 1..4
    assert m("prob_correct", item) == pytest.approx(0.25)
    assert m("brier", item) == pytest.approx(3 * 0.25**2 + 0.75**2)


def test_registry_lists_directions_and_kinds() -> None:
    assert METRICS.get("edit_distance").higher_is_better is False
    assert METRICS.get("edit_similarity").higher_is_better is True
    assert METRICS.get("brier").higher_is_better is False
    assert METRICS.get("rank").higher_is_better is False
    assert {x.name for x in metrics_for("generate")} >= {"exact_match", "token_accuracy", "rank"}
    assert "accuracy" not in {x.name for x in metrics_for("generate")}
    with pytest.raises(UserError, match="did you mean 'exact_match'"):
        METRICS.get("exact_mach")
    assert all(x.description for x in METRICS._items.values())


def test_task_metric_names_are_registered() -> None:
    from emergence.tasks import CHOICE_METRICS, GENERATE_METRICS

    for name in GENERATE_METRICS:
        assert "generate" in METRICS.get(name).kinds
    for name in CHOICE_METRICS:
        assert "choice" in METRICS.get(name).kinds


def test_missing_inputs_are_errors_not_zeros() -> None:
    with pytest.raises(ValueError, match="generation"):
        m("exact_match", ItemResult(target="1"))
    with pytest.raises(ValueError, match="log-likelihood"):
        m("token_accuracy", ItemResult(target="1"))


# ------------------------------------------------------------------------------------------ statistics


def test_bootstrap_stderr_matches_analytic() -> None:
    x = np.random.default_rng(1).normal(size=400)
    analytic = x.std(ddof=1) / math.sqrt(x.size)
    boot = bootstrap_stderr(x, n_resamples=2000, seed=0)
    assert boot == pytest.approx(analytic, rel=0.1)
    assert bootstrap_stderr(x, n_resamples=0) == pytest.approx(analytic)
    assert bootstrap_stderr(x, 500, seed=3) == bootstrap_stderr(x, 500, seed=3)  # seeded
    assert bootstrap_stderr(x, 500, seed=3) != bootstrap_stderr(x, 500, seed=4)


def test_bootstrap_stderr_edge_cases() -> None:
    assert bootstrap_stderr(np.ones(50), 200) == 0.0
    assert math.isnan(bootstrap_stderr([1.0], 200))
    # Bernoulli(0.5) of 100 items: sqrt(.25/100) = 0.05
    b = np.array([0.0, 1.0] * 50)
    assert bootstrap_stderr(b, 4000, seed=0) == pytest.approx(0.05, rel=0.08)


def test_aggregate_over_trials() -> None:
    rng = np.random.default_rng(0)
    items = rng.normal(size=200)
    shifts = np.array([-1.0, 0.0, 1.0])  # a large prompt effect
    matrix = items[None, :] + shifts[:, None]  # (3 trials, 200 items)
    agg = aggregate(matrix, n_resamples=1000, seed=0)
    assert agg.value == pytest.approx(matrix.mean())
    assert agg.n == 200 and agg.n_trials == 3
    assert agg.trial_values == pytest.approx((items.mean() - 1, items.mean(), items.mean() + 1))
    assert agg.stderr_trials == pytest.approx(1.0 / math.sqrt(3))  # std of (-1, 0, 1) is 1
    assert agg.stderr_items == pytest.approx(items.std(ddof=1) / math.sqrt(200), rel=0.15)
    # the total includes the trial spread, so it exceeds the item-only stderr
    assert agg.stderr > 3 * agg.stderr_items
    assert len(agg.trial_stderrs) == 3


def test_aggregate_one_trial_equals_item_bootstrap() -> None:
    x = np.random.default_rng(2).normal(size=(1, 60))
    agg = aggregate(x, n_resamples=300, seed=5)
    assert agg.stderr == pytest.approx(bootstrap_stderr(x[0], 300, 5))
    assert math.isnan(agg.stderr_trials)


def test_two_way_bootstrap_analytic_fallback() -> None:
    x = np.random.default_rng(3).normal(size=(4, 100))
    boot = bootstrap_stderr_2way(x, 3000, seed=0)
    analytic = bootstrap_stderr_2way(x, 0)
    assert boot == pytest.approx(analytic, rel=0.2)
    with pytest.raises(ValueError):
        aggregate(np.zeros((0, 3)))
