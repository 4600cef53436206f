"""Per-item metrics, the METRICS registry, and aggregates with bootstrap standard errors.

A metric reads one `ItemResult` (what the model produced for one test item: its greedy generation, the
teacher-forced log-likelihood of the target, the log-likelihood of every choice) and returns one float. The
evaluator averages items, so every metric is a per-item mean; its uncertainty is a bootstrap over items.

Why so many metrics for one ability: Schaeffer et al. 2023 show that a discontinuous metric (exact match,
multiple-choice grade) can make a smooth improvement look "emergent", while a continuous one (edit distance,
answer log-probability, Brier score) does not. Every task is therefore reported under both kinds
(REFERENCES.md §2). Definitions and directions are listed in docs/evaluation.md and in each `description`.

Ties between choices are broken uniformly at random *in expectation*: a correct choice tied with t others at
the top scores 1/(1+t) accuracy and rank 1 + (#better) + t/2, so a constant model scores exactly chance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from emergence import metric_table
from emergence.evaluate.lm import LLResult
from emergence.registry import Registry

# What a metric reads: the greedy generation, or the teacher-forced scores (the target's log-likelihood for a
# generate task; every choice's for a choice task, the target being one of them).
Need = Literal["generation", "scores"]
TaskKind = Literal["generate", "choice"]


@dataclass(frozen=True)
class ItemResult:
    """What the model produced for one test item; the single input of every metric."""

    target: str
    choices: tuple[str, ...] | None = None
    generation: str | None = None  # greedy answer, already cut at the stop sequence
    target_ll: LLResult | None = None  # teacher-forced log-likelihood of `target`
    choice_lls: tuple[LLResult, ...] | None = None  # one per choice, same order as `choices`

    @property
    def answer_index(self) -> int:
        """Index of the target among the choices."""
        if self.choices is None:
            raise ValueError("answer_index: item has no choices")
        return self.choices.index(self.target)


@dataclass(frozen=True)
class Metric:
    """A named per-item metric: what it needs from the model, which task kinds it fits, its direction."""

    name: str
    fn: Callable[[ItemResult], float]
    needs: frozenset[Need]
    kinds: frozenset[TaskKind]
    higher_is_better: bool
    description: str = ""

    def __call__(self, item: ItemResult) -> float:
        return float(self.fn(item))


METRICS: Registry[Metric] = Registry("metric")


def _metric(
    name: str, needs: Sequence[Need], kinds: Sequence[TaskKind]
) -> Callable[[Callable[[ItemResult], float]], Callable[[ItemResult], float]]:
    """Register `fn` as a metric; its docstring becomes the description, its direction the metric table's."""
    higher = metric_table.METRICS.get(name).higher_is_better  # every built-in metric has a record there

    def deco(fn: Callable[[ItemResult], float]) -> Callable[[ItemResult], float]:
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        METRICS.add(name, Metric(name, fn, frozenset(needs), frozenset(kinds), higher, doc))
        return fn

    return deco


# --------------------------------------------------------------------------------------------- helpers


def normalize_answer(text: str) -> str:
    """Answers are compared ignoring surrounding whitespace only (case and inner spaces count)."""
    return text.strip()


def levenshtein(a: Sequence[object], b: Sequence[object]) -> int:
    """Edit distance (insertions, deletions, substitutions, each cost 1) between two sequences."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def normalized_edit_distance(generated: str, target: str) -> float:
    """Character Levenshtein distance / the longer length, in [0, 1]; 0 for two empty strings."""
    g, t = normalize_answer(generated), normalize_answer(target)
    longest = max(len(g), len(t))
    return levenshtein(g, t) / longest if longest else 0.0


def _choice_scores(item: ItemResult, per_char: bool) -> np.ndarray:
    assert item.choice_lls is not None and item.choices is not None
    scores = np.array([r.logprob for r in item.choice_lls], dtype=np.float64)
    if per_char:
        # Per character, not per token, so the normalisation does not depend on the tokenizer (lm-eval's
        # acc_norm uses bytes for the same reason); an empty choice counts as one character.
        scores = scores / np.array([max(len(c), 1) for c in item.choices], dtype=np.float64)
    return scores


def _tie_aware_accuracy(scores: np.ndarray, answer: int) -> float:
    best = scores[answer]
    if np.any(scores > best):
        return 0.0
    ties = int(np.sum(scores == best)) - 1
    return 1.0 / (1 + ties)


def _tie_aware_rank(scores: np.ndarray, answer: int) -> float:
    best = scores[answer]
    better = int(np.sum(scores > best))
    ties = int(np.sum(scores == best)) - 1
    return 1.0 + better + ties / 2.0


def choice_probabilities(item: ItemResult) -> np.ndarray:
    """Softmax over the choices' summed log-likelihoods: the model's distribution over the choices."""
    scores = _choice_scores(item, per_char=False)
    z = scores - scores.max()
    p = np.exp(z)
    return p / p.sum()


def _require(value: object, name: str, what: str) -> None:
    if value is None:
        raise ValueError(f"metric {name}: the item has no {what}")


def _target_ll(item: ItemResult, name: str) -> LLResult:
    """The target's teacher-forced score (for a choice task: the correct choice's)."""
    if item.target_ll is not None:
        return item.target_ll
    if item.choice_lls is not None:
        return item.choice_lls[item.answer_index]
    raise ValueError(f"metric {name}: the item has no target log-likelihood")


# --------------------------------------------------------------------------------------------- metrics


@_metric("exact_match", needs=["generation"], kinds=["generate", "choice"])
def exact_match(item: ItemResult) -> float:
    """1 if the greedy answer equals the target (surrounding whitespace ignored), else 0."""
    _require(item.generation, "exact_match", "generation")
    return float(normalize_answer(item.generation or "") == normalize_answer(item.target))


@_metric("edit_distance", needs=["generation"], kinds=["generate", "choice"])
def edit_distance(item: ItemResult) -> float:
    """Character Levenshtein distance between greedy answer and target / the longer length, in [0, 1]."""
    _require(item.generation, "edit_distance", "generation")
    return normalized_edit_distance(item.generation or "", item.target)


@_metric("edit_similarity", needs=["generation"], kinds=["generate", "choice"])
def edit_similarity(item: ItemResult) -> float:
    """1 − edit_distance, so that higher is better like the other scores."""
    return 1.0 - edit_distance(item)


@_metric("token_accuracy", needs=["scores"], kinds=["generate", "choice"])
def token_accuracy(item: ItemResult) -> float:
    """Teacher-forced fraction of target tokens that are the model's argmax (1 for an empty target)."""
    r = _target_ll(item, "token_accuracy")
    return sum(r.token_greedy) / r.n_tokens if r.n_tokens else 1.0


@_metric("answer_logprob", needs=["scores"], kinds=["generate", "choice"])
def answer_logprob(item: ItemResult) -> float:
    """Sum over target tokens of log p(token | context, previous target tokens), in nats."""
    return _target_ll(item, "answer_logprob").logprob


@_metric("answer_logprob_per_token", needs=["scores"], kinds=["generate", "choice"])
def answer_logprob_per_token(item: ItemResult) -> float:
    """answer_logprob divided by the number of target tokens (0 for an empty target)."""
    r = _target_ll(item, "answer_logprob_per_token")
    return r.logprob / r.n_tokens if r.n_tokens else 0.0


@_metric("prob_correct", needs=["scores"], kinds=["generate", "choice"])
def prob_correct(item: ItemResult) -> float:
    """Generate: exp(answer_logprob); choice: the correct choice's share of the softmax over choices."""
    if item.choices is not None:
        _require(item.choice_lls, "prob_correct", "choice log-likelihoods")
        return float(choice_probabilities(item)[item.answer_index])
    return math.exp(answer_logprob(item))


@_metric("rank", needs=["scores"], kinds=["generate", "choice"])
def rank(item: ItemResult) -> float:
    """Choice: 1-based rank of the correct choice; generate: mean 1-based rank of each target token."""
    if item.choices is not None:
        _require(item.choice_lls, "rank", "choice log-likelihoods")
        return _tie_aware_rank(_choice_scores(item, per_char=False), item.answer_index)
    r = _target_ll(item, "rank")
    return sum(r.token_ranks) / r.n_tokens if r.n_tokens else 1.0


@_metric("accuracy", needs=["scores"], kinds=["choice"])
def accuracy(item: ItemResult) -> float:
    """1 if the correct choice has the highest summed log-likelihood (a tie among t+1 scores 1/(t+1))."""
    _require(item.choice_lls, "accuracy", "choice log-likelihoods")
    return _tie_aware_accuracy(_choice_scores(item, per_char=False), item.answer_index)


@_metric("accuracy_norm", needs=["scores"], kinds=["choice"])
def accuracy_norm(item: ItemResult) -> float:
    """accuracy with each choice's log-likelihood divided by its length in characters."""
    _require(item.choice_lls, "accuracy_norm", "choice log-likelihoods")
    return _tie_aware_accuracy(_choice_scores(item, per_char=True), item.answer_index)


@_metric("brier", needs=["scores"], kinds=["choice"])
def brier(item: ItemResult) -> float:
    """Σ_j (p_j − 1[j = answer])² with p the softmax over choice log-likelihoods, in [0, 2]."""
    _require(item.choice_lls, "brier", "choice log-likelihoods")
    p = choice_probabilities(item)
    onehot = np.zeros_like(p)
    onehot[item.answer_index] = 1.0
    return float(np.sum((p - onehot) ** 2))


def metrics_for(kind: str, names: Sequence[str] | None = None) -> list[Metric]:
    """The metrics named (or all registered) that fit a task kind, in registry order; unknown names raise."""
    chosen = [METRICS.get(n) for n in (names if names is not None else METRICS.names())]
    return [m for m in chosen if kind in m.kinds]


# --------------------------------------------------------------------------------------------- aggregates


@dataclass(frozen=True)
class Aggregate:
    """Mean of a metric with its standard errors (items, trials, both) and the counts behind them."""

    value: float
    stderr: float
    stderr_items: float
    stderr_trials: float
    n: int
    n_trials: int
    trial_values: tuple[float, ...] = field(default_factory=tuple)
    trial_stderrs: tuple[float, ...] = field(default_factory=tuple)


def _counts(rng: np.random.Generator, n: int, n_resamples: int) -> np.ndarray:
    # Resampling with replacement = multinomial counts; a mean of a resample is then a dot product, which
    # keeps memory at (R, n) instead of (R, n) index gathers per axis.
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.float64)  # (R, n)


def bootstrap_stderr(values: Sequence[float] | np.ndarray, n_resamples: int = 1000, seed: int = 0) -> float:
    """Stderr of the mean by bootstrap over items (analytic s/√n when n_resamples is 0; NaN if n < 2)."""
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n < 2:
        return float("nan")
    if n_resamples <= 0:
        return float(x.std(ddof=1) / math.sqrt(n))
    counts = _counts(np.random.default_rng(seed), n, n_resamples)
    means = counts @ x / n  # (R,)
    return float(means.std(ddof=1))


def bootstrap_stderr_2way(matrix: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> float:
    """Stderr of the grand mean of a (trials, items) matrix, resampling trials and items independently."""
    m = np.asarray(matrix, dtype=np.float64)
    t, n = m.shape
    if t < 2:
        return bootstrap_stderr(m[0] if t == 1 else [], n_resamples, seed)
    if n < 2:
        return bootstrap_stderr(m[:, 0] if n == 1 else [], n_resamples, seed)
    if n_resamples <= 0:
        # Analytic: item variance of the per-item trial means plus trial variance of the per-trial item means.
        return float(math.sqrt(m.mean(0).var(ddof=1) / n + m.mean(1).var(ddof=1) / t))
    rng = np.random.default_rng(seed)
    wt = _counts(rng, t, n_resamples)  # (R, T)
    wi = _counts(rng, n, n_resamples)  # (R, N)
    means = np.einsum("rt,tn,rn->r", wt, m, wi) / (t * n)  # (R,)
    return float(means.std(ddof=1))


def aggregate(matrix: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> Aggregate:
    """Aggregate per-item values of shape (trials, items) into a mean with item, trial and total stderrs.

    stderr_items: bootstrap over items of the per-item mean over trials; stderr_trials: s/√T of the per-trial
    means (prompt variance, HELM-style; NaN with one trial); stderr: both resampled at once (equals
    stderr_items with one trial). Each trial also gets its own mean and item stderr.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise ValueError(f"aggregate: expected a non-empty (trials, items) matrix, got shape {m.shape}")
    t, n = m.shape
    trial_means = m.mean(1)  # (T,)
    return Aggregate(
        value=float(m.mean()),
        stderr=bootstrap_stderr_2way(m, n_resamples, seed),
        stderr_items=bootstrap_stderr(m.mean(0), n_resamples, seed),
        stderr_trials=float(trial_means.std(ddof=1) / math.sqrt(t)) if t > 1 else float("nan"),
        n=n,
        n_trials=t,
        trial_values=tuple(float(v) for v in trial_means),
        trial_stderrs=tuple(bootstrap_stderr(m[i], n_resamples, seed) for i in range(t)),
    )
