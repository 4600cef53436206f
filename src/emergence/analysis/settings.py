"""Options of the emergence analysis (`AnalysisConfig`) and the metric-table lookup it implies.

Every cut-off of the verdict rule lives here with its default; docs/emergence-analysis.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from emergence.analysis import bigbench
from emergence.config import from_dict
from emergence.metric_table import METRICS, MetricSpec


@dataclass(frozen=True)
class AnalysisConfig:
    """Options of the emergence analysis; every threshold of the verdict rule is here with its default."""

    scale_axes: tuple[str, ...] = ("n_params", "flops")  # scale columns (final step of each run)
    primary_axis: str = "n_params"  # axis of verdicts, mirage check and PassUntil
    time_axis: str = "step"  # training-time column: all steps, one curve per member
    # Extra columns that, when present, separate groups (`adaptation`: zero-shot / few-shot / finetuned-…;
    # `budget_multiplier`: studies that vary data size).
    split_by: tuple[str, ...] = ("family", "arch", "adaptation", "budget_multiplier")
    n_boot: int = 200  # bootstrap replicates for every interval
    ci: float = 0.9  # level of every interval
    seed: int = 0  # RNG seed of the bootstraps
    criterion: Literal["auto", "aic", "aicc", "bic"] = "auto"  # auto: AICc when n/k < 40
    max_k: float = 50.0  # bound on sigmoid sharpness per decade
    min_points: int = 3  # scale points needed for fits and verdicts
    small_max_score: float = 20.0  # (a) smallest model near chance: normalised score ≤ this
    large_min_score: float = 50.0  # (b) largest model well above chance: normalised score ≥ this
    min_delta_aic: float = 4.0  # (c) sigmoid/hinge beats the line by at least this much of the criterion
    # (d) B ≥ ratio·(n − 1); equal steps give B = n − 1, a log-scale sigmoid rising 1 → 82 % within one decade
    # of 9 half-decade points gives 1.25·(n − 1), a single jump is clipped at max_breakthroughness.
    min_breakthroughness_ratio: float = 1.2
    absent_max_score: float = 20.0  # absent: largest model's score below this
    min_improvement: float = 20.0  # smooth: the score rises by at least this many points
    max_breakthroughness: float = bigbench.DEFAULT_MAX_BREAKTHROUGHNESS  # clip of B
    holdout: int = 1  # largest scale points held out for prediction
    fit_time_axis: bool = True  # fit each member's training-time curve
    trial_column: str = "trial"  # when present, rows with trial < 0 (aggregates over trials) are used
    length_column: str = "answer_len"  # rows carrying this column are per-answer-length breakdowns
    length_token_metric: str = "token_accuracy"  # p in the p^L prediction
    length_em_metric: str = "exact_match"  # measured exact match
    metrics: dict[str, MetricSpec] = field(default_factory=dict)  # metric-table overrides and additions
    # Verdict stability (docs/emergence-analysis.md, "Stability"): the rule is re-applied to this many
    # resamples (seeds with replacement within each member, items redrawn within each seed); a label that
    # wins fewer than `stability_bar` of them makes the verdict "borderline". 0 switches it off.
    stability_resamples: int = 200
    stability_bar: float = 0.8
    # Design power ("Design"): how often a sigmoid rising from 10 % to 90 % of the way to the best value
    # within `power_rise_decades` of the primary axis, its midpoint anywhere in the middle half of the
    # sampled span, would be called emergent with the study's own sizes, seeds and items. Below `min_power`
    # the design cannot see a jump, and a verdict other than "emergent" becomes "inconclusive (design)".
    power_rise_decades: float = 0.5
    power_seed_jitter_decades: float = 0.05  # seed-to-seed spread of the simulated midpoint
    power_sims: int = 200
    min_power: float = 0.5

    def __post_init__(self) -> None:
        if not self.scale_axes:
            raise ValueError("scale_axes: name at least one scale column")
        if self.primary_axis not in self.scale_axes:
            raise ValueError(
                f"primary_axis: {self.primary_axis!r} is not one of scale_axes {self.scale_axes}"
            )
        if self.n_boot < 0:
            raise ValueError("n_boot: must be >= 0")
        if not 0.0 < self.ci < 1.0:
            raise ValueError("ci: must be in (0, 1)")
        if self.min_points < 3:
            raise ValueError("min_points: must be >= 3 (a line through 2 points says nothing)")
        if self.holdout < 1:
            raise ValueError("holdout: must be >= 1")
        if self.max_k <= 0 or self.max_breakthroughness <= 0:
            raise ValueError("max_k, max_breakthroughness: must be > 0")
        if self.stability_resamples < 0 or self.power_sims < 0:
            raise ValueError("stability_resamples, power_sims: must be >= 0")
        if not 0.5 < self.stability_bar <= 1.0:
            raise ValueError("stability_bar: must be in (0.5, 1]")
        if not 0.0 <= self.min_power <= 1.0:
            raise ValueError("min_power: must be in [0, 1]")
        if self.power_rise_decades <= 0 or self.power_seed_jitter_decades < 0:
            raise ValueError("power_rise_decades: must be > 0; power_seed_jitter_decades: must be >= 0")


def metric_spec(name: str, cfg: AnalysisConfig) -> tuple[MetricSpec, bool]:
    """The spec of a metric (config override, then the table) and whether it was known."""
    if name in cfg.metrics:
        return cfg.metrics[name], True
    if name in METRICS:
        return METRICS.get(name), True
    return MetricSpec(), False


def load_config(data: dict[str, Any] | None) -> AnalysisConfig:
    """Build an AnalysisConfig from plain data (e.g. a study's `analysis:` section)."""
    return from_dict(AnalysisConfig, data or {}, where="analysis")
