"""The metric table: how to read each metric, in one place for the evaluator, the analysis and the report.

Every metric name the lab writes into result rows has one `MetricSpec` here: its direction, whether it is
all-or-nothing per item (the kind of metric that can manufacture a jump, Schaeffer et al. 2023) or gives
partial credit, its chance level and its best value. The evaluator reads the chance rule to write the
`chance` column, the analysis reads the whole record to normalise scores and pick the mirage controls, and
the report reads direction and kind for labels. Extend it with `register_metric`, or per analysis with
`AnalysisConfig.metrics` (docs/emergence-analysis.md, "The metric table").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from emergence.registry import Registry

Kind = Literal["discontinuous", "continuous"]


@dataclass(frozen=True)
class MetricSpec:
    """How to read one metric: direction, kind, chance level and best value (docs/emergence-analysis.md)."""

    higher_is_better: bool = True
    kind: Kind = "continuous"
    # "choice": the rows' `chance` column, else 1/`n_choices`, else 0 (generate tasks); "observed": the worst
    # mean on the curve; a number: that value.
    chance: Literal["choice", "observed"] | float = "observed"
    best: float | None = None  # None: the best mean on the curve
    # exp(Σ log p) over the answer's tokens: on multi-token answers nonlinear in per-token quality, as
    # exact match is (≈ p^L), so the mirage check uses it neither as a jump nor as a smooth control.
    compounds: bool = False
    # A model that cannot tell the choices apart scores exactly the mean of 1/#choices (ties are broken
    # uniformly in expectation), so the evaluator writes that as the row's `chance`. Not so for exact match:
    # a generation need not be any of the choices.
    uniform_choice: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("discontinuous", "continuous"):
            raise ValueError(f"kind: expected 'discontinuous' or 'continuous', got {self.kind!r}")
        if isinstance(self.chance, str) and self.chance not in ("choice", "observed"):
            raise ValueError(f"chance: expected 'choice', 'observed' or a number, got {self.chance!r}")


METRICS: Registry[MetricSpec] = Registry("metric spec")


def register_metric(name: str, spec: MetricSpec) -> None:
    """Add a metric to the table used by every analysis (see also `AnalysisConfig.metrics`)."""
    METRICS.add(name, spec)


def spec_of(name: str) -> MetricSpec | None:
    """The table's record for a metric, or None for a name it does not know."""
    return METRICS.get(name) if name in METRICS else None


def is_discontinuous(name: str) -> bool:
    spec = spec_of(name)
    return spec is not None and spec.kind == "discontinuous"


def higher_is_better(name: str, default: bool = True) -> bool:
    spec = spec_of(name)
    return default if spec is None else spec.higher_is_better


_ACC = MetricSpec(True, "discontinuous", "choice", 1.0)
_CHOICE_ACC = MetricSpec(True, "discontinuous", "choice", 1.0, uniform_choice=True)
_PROB = MetricSpec(True, "continuous", "choice", 1.0, compounds=True, uniform_choice=True)
for _name, _spec in {
    # All-or-nothing per item: these are the metrics that can manufacture a jump (Schaeffer et al. 2023).
    "exact_match": _ACC,
    "accuracy": _CHOICE_ACC,
    "accuracy_norm": _CHOICE_ACC,
    "multiple_choice_grade": _ACC,
    "pass_rate": _ACC,
    # Partial credit per item.
    "token_accuracy": MetricSpec(True, "continuous", 0.0, 1.0),
    "edit_similarity": MetricSpec(True, "continuous", 0.0, 1.0),
    "edit_distance": MetricSpec(False, "continuous", 1.0, 0.0),  # normalised to [0, 1] by the evaluator
    "answer_logprob": MetricSpec(True, "continuous", "observed", 0.0),
    "answer_logprob_per_token": MetricSpec(True, "continuous", "observed", 0.0),
    "prob_correct": _PROB,
    "answer_prob": MetricSpec(True, "continuous", "choice", 1.0, compounds=True),
    "choice_prob": MetricSpec(True, "continuous", "choice", 1.0),
    "brier": MetricSpec(False, "continuous", "observed", 0.0),
    "rank": MetricSpec(False, "continuous", "observed", 1.0),
    "answer_rank": MetricSpec(False, "continuous", "observed", 1.0),
    "choice_rank": MetricSpec(False, "continuous", "observed", 1.0),
    # Held-out corpus loss (sweep/corpus.py): the best value is the text's entropy, unknown in general.
    "lm_loss": MetricSpec(False, "continuous", "observed", None),
    "bits_per_char": MetricSpec(False, "continuous", "observed", None),
}.items():
    register_metric(_name, _spec)
