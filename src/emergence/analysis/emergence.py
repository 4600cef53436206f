"""Per task × shots × metric emergence analysis of result rows → the `analysis.json` dictionary.

For every task, shot count, group (e.g. family) and metric this module builds curves over scale (final step
of each run) and over training steps, fits line / sigmoid / hinge (`fits.py`), computes the BIG-bench
normalised score, linearity and breakthroughness (`bigbench.py`), predicts the largest model from the smaller
ones, checks the PassUntil linearity (Hu et al. 2023), and classifies the curve by the documented rule of
docs/emergence-analysis.md. Per task it then runs the metric-choice ("mirage") check of Schaeffer et al. 2023:
does a jump under a discontinuous metric survive under a continuous one? The JSON schema is fixed in that
document.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from emergence.analysis import bigbench, fits, scaling, scaling_law
from emergence.analysis.answer_length import length_check, predict_exact_match  # noqa: F401 (re-exported)
from emergence.analysis.generalisation import seen_unseen
from emergence.config import from_dict, to_dict
from emergence.errors import UserError
from emergence.io import read_json, write_json
from emergence.registry import Registry

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
REQUIRED_COLUMNS = ("run_id", "step", "task", "metric", "value")
AXIS_UNITS = {"n_params": "params", "n_params_non_embedding": "non-embedding params", "flops": "FLOPs"}


@dataclass(frozen=True)
class MetricSpec:
    """How to read one metric: direction, kind, chance level and best value (docs/emergence-analysis.md)."""

    higher_is_better: bool = True
    kind: Literal["discontinuous", "continuous"] = "continuous"
    # "choice": the rows' `chance` column, else 1/`n_choices`, else 0 (generate tasks); "observed": the worst
    # mean on the curve; a number: that value.
    chance: Literal["choice", "observed"] | float = "observed"
    best: float | None = None  # None: the best mean on the curve
    # exp(Σ log p) over the answer's tokens: on multi-token answers nonlinear in per-token quality, as
    # exact match is (≈ p^L), so the mirage check uses it neither as a jump nor as a smooth control.
    compounds: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("discontinuous", "continuous"):
            raise ValueError(f"kind: expected 'discontinuous' or 'continuous', got {self.kind!r}")
        if isinstance(self.chance, str) and self.chance not in ("choice", "observed"):
            raise ValueError(f"chance: expected 'choice', 'observed' or a number, got {self.chance!r}")


METRICS: Registry[MetricSpec] = Registry("metric spec")


def register_metric(name: str, spec: MetricSpec) -> None:
    """Add a metric to the table used by every analysis (see also `AnalysisConfig.metrics`)."""
    METRICS.add(name, spec)


_ACC = MetricSpec(True, "discontinuous", "choice", 1.0)
_PROB = MetricSpec(True, "continuous", "choice", 1.0, compounds=True)
for _name, _spec in {
    # All-or-nothing per item: these are the metrics that can manufacture a jump (Schaeffer et al. 2023).
    "exact_match": _ACC,
    "accuracy": _ACC,
    "accuracy_norm": _ACC,
    "multiple_choice_grade": _ACC,
    "pass_rate": _ACC,
    # Partial credit per item.
    "token_accuracy": MetricSpec(True, "continuous", 0.0, 1.0),
    "edit_similarity": MetricSpec(True, "continuous", 0.0, 1.0),
    "edit_distance": MetricSpec(False, "continuous", 1.0, 0.0),  # normalised to [0, 1] by the evaluator
    "answer_logprob": MetricSpec(True, "continuous", "observed", 0.0),
    "answer_logprob_per_token": MetricSpec(True, "continuous", "observed", 0.0),
    "prob_correct": _PROB,
    "answer_prob": _PROB,
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


def metric_spec(name: str, cfg: AnalysisConfig) -> tuple[MetricSpec, bool]:
    """The spec of a metric (config override, then the table) and whether it was known."""
    if name in cfg.metrics:
        return cfg.metrics[name], True
    if name in METRICS:
        return METRICS.get(name), True
    return MetricSpec(), False


# ----------------------------------------------------------------------------------------------- curves


def _ci_of_mean(values: np.ndarray, rng: np.random.Generator, n_boot: int, ci: float) -> tuple[Any, Any]:
    """Percentile bootstrap CI of the mean over seeds (None with fewer than two seeds)."""
    if values.size < 2 or n_boot <= 0:
        return None, None
    idx = rng.integers(0, values.size, size=(n_boot, values.size))  # (n_boot, n_seeds)
    means = values[idx].mean(axis=1)
    a = (1.0 - ci) / 2.0
    lo, hi = np.quantile(means, [a, 1.0 - a])
    return float(lo), float(hi)


def build_curve(
    obs: pd.DataFrame, x_col: str, label: str | None, cfg: AnalysisConfig, x_by: str
) -> dict[str, Any]:
    """Curve block: mean over seeds, bootstrap CI, and every per-seed point, sorted by x.

    `x_by` is the column that defines a point: "member" for scale curves (the member's mean x), the time
    column for training curves.
    """
    rng = np.random.default_rng(cfg.seed)
    obs = obs.copy()
    if x_by == "member":
        obs["_x"] = obs.groupby("member")[x_col].transform("mean")
    else:
        obs["_x"] = obs[x_col]
    obs = obs.sort_values(["_x", "seed", "run_id"], kind="stable")
    xs, members, mean, lo, hi, n_seeds = [], [], [], [], [], []
    for xv, g in obs.groupby("_x", sort=True):
        vals = g["value"].to_numpy(float)
        vals = vals[np.isfinite(vals)]
        xs.append(float(xv))
        members.append(str(g["member"].iloc[0]))
        mean.append(float(vals.mean()) if vals.size else None)
        c = _ci_of_mean(vals, rng, cfg.n_boot, cfg.ci)
        lo.append(c[0])
        hi.append(c[1])
        n_seeds.append(int(vals.size))
    return {
        "axis": x_col,
        "label": label,
        "x": xs,
        "members": members,
        "mean": mean,
        "ci_low": lo,
        "ci_high": hi,
        "n_seeds": n_seeds,
        "points": {
            "x": [float(v) for v in obs["_x"]],
            "y": [_num(v) for v in obs["value"]],
            "seed": [_seed(s) for s in obs["seed"]],
            "run_id": [str(r) for r in obs["run_id"]],
        },
    }


def _seed(v: Any) -> int | None:
    f = _num(v)
    return int(f) if f is not None and f == int(f) else None


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# ------------------------------------------------------------------------------------- normalised scores


def resolve_bounds(
    spec: MetricSpec, means: list[float | None], rows: pd.DataFrame
) -> tuple[float | None, float | None]:
    """(low, high) in raw units: low = chance (or worst observed), high = best (or best observed)."""
    vals = np.array([m for m in means if m is not None], float)
    worst = (vals.min() if spec.higher_is_better else vals.max()) if vals.size else None
    best_obs = (vals.max() if spec.higher_is_better else vals.min()) if vals.size else None
    if isinstance(spec.chance, float | int):
        low: float | None = float(spec.chance)
    elif spec.chance == "observed":
        low = None if worst is None else float(worst)
    else:
        low = 0.0  # generate tasks: a random answer is never exactly right
        if "chance" in rows and rows["chance"].notna().any():
            low = float(rows["chance"].mean())
        elif "n_choices" in rows and rows["n_choices"].notna().any():
            low = float((1.0 / rows["n_choices"].astype(float)).mean())
    high = spec.best if spec.best is not None else (None if best_obs is None else float(best_obs))
    return low, high


# ------------------------------------------------------------------------------------------------ verdict


def _fmt(v: float) -> str:
    """3.1e5-style numbers for verdict sentences."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    e = math.floor(math.log10(abs(v)))
    if -2 <= e <= 3:
        return f"{v:.3g}"
    m = v / 10**e
    if round(m, 1) >= 10:
        m, e = m / 10, e + 1
    return f"{m:.1f}e{e}"


def classify(bb: dict[str, Any], fit: dict[str, Any], axis: str, cfg: AnalysisConfig) -> dict[str, Any]:
    """Verdict block for one curve: emergent / smooth / absent / inconclusive, with reasons."""
    crit = {"near_chance_small": None, "well_above_large": None, "nonlinear_fit": None, "breakthrough": None}
    out = {"verdict": "inconclusive", "axis": axis, "criteria": crit, "reasons": [], "threshold": None}
    scores = [s for s in bb["scores"] if s is not None]
    n = len(scores)
    if bb["status"] == "degenerate":
        out["reasons"].append("the normalised score is undefined (chance level equals the best value)")
        return out
    if n < cfg.min_points:
        out["reasons"].append(f"{n} scale points with a score (need {cfg.min_points})")
        return out
    s1, sn = scores[0], scores[-1]
    reasons = out["reasons"]
    crit["near_chance_small"] = s1 <= cfg.small_max_score
    reasons.append(
        f"smallest model {'near' if crit['near_chance_small'] else 'not near'} chance "
        f"(score {s1:.1f} {'<=' if crit['near_chance_small'] else '>'} {cfg.small_max_score:g})"
    )
    crit["well_above_large"] = sn >= cfg.large_min_score
    reasons.append(
        f"largest model {'well above' if crit['well_above_large'] else 'not well above'} chance "
        f"(score {sn:.1f} {'>=' if crit['well_above_large'] else '<'} {cfg.large_min_score:g})"
    )
    delta, best, c_name = fit.get("delta_vs_line"), fit.get("best"), fit.get("criterion", "aic").upper()
    if fit.get("status") == "ok" and best is not None and delta is not None:
        crit["nonlinear_fit"] = best != "line" and delta >= cfg.min_delta_aic
        if best == "line":
            reasons.append(f"a straight line in log-scale fits best ({c_name})")
        else:
            ok = crit["nonlinear_fit"]
            reasons.append(
                f"{best} beats the line by Δ{c_name} = {delta:.1f} "
                f"({'>=' if ok else '<'} {cfg.min_delta_aic:g})"
            )
    else:
        crit["nonlinear_fit"] = False
        reasons.append(f"no shape fit ({fit.get('status')}: {fit.get('reason')})")
    b = bb.get("breakthroughness")
    need = cfg.min_breakthroughness_ratio * (n - 1)
    if b is not None:
        crit["breakthrough"] = b >= need
        clip = " (clipped: a single jump)" if bb.get("clipped") else ""
        reasons.append(
            f"breakthroughness B = {b:.3g}{clip} {'>=' if crit['breakthrough'] else '<'} "
            f"{cfg.min_breakthroughness_ratio:g}·(n−1) = {need:.3g}"
        )
    else:
        crit["breakthrough"] = False
    out["threshold"] = fit.get("threshold")
    if all(crit.values()):
        out["verdict"] = "emergent"
    elif sn < cfg.absent_max_score:
        out["verdict"] = "absent"
        reasons.append(f"largest model's score {sn:.1f} < {cfg.absent_max_score:g}: not present at any scale")
    elif crit["nonlinear_fit"] and crit["breakthrough"]:
        # A sharp rise that does not go from near chance to well above it: a jump, but not Wei et al.'s
        # "absent in small models, present in large ones".
        reasons.append("a sharp rise, but not from near chance to well above it")
    elif sn - s1 >= cfg.min_improvement:
        out["verdict"] = "smooth"
        reasons.append(f"score rises by {sn - s1:.1f} points without a jump")
    else:
        reasons.append("neither a jump from near chance nor a steady rise")
    return out


# ----------------------------------------------------------------------------------------- prediction


def length_prediction(
    length_rows: pd.DataFrame, group_cols: list[str], cfg: AnalysisConfig
) -> list[dict[str, Any]]:
    """Predicted p^L against measured exact match per answer length (final steps; `answer_length.py`)."""
    out: list[dict[str, Any]] = []
    tok, em = cfg.length_token_metric, cfg.length_em_metric
    rows = length_rows[length_rows["metric"].isin([tok, em])]
    if rows.empty:
        return out
    keys = ["task", "shots", *group_cols]
    for key, g in rows.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        check = length_check(
            g, token_metric=tok, em_metric=em, length_column=cfg.length_column, axis=cfg.primary_axis
        )
        if check is None:
            continue
        head = {"task": str(key[0]), "shots": int(key[1]), "group": _group_dict(group_cols, key[2:])}
        out.append(head | check)
    return out


# ----------------------------------------------------------------------------------------------- driver


def _group_dict(cols: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
    return {
        c: (None if v is None or (isinstance(v, float) and math.isnan(v)) else _plain(v))
        for c, v in zip(cols, values, strict=True)
    }


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _prepare(
    df: pd.DataFrame, cfg: AnalysisConfig, warnings: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    """Check columns, fill optional ones, split off per-length rows: (rows, length rows, groups, axes)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(
            f"results: missing column(s) {', '.join(missing)} (see docs/architecture.md, Result row)"
        )
    if cfg.primary_axis not in df.columns:
        raise UserError(f"results: no {cfg.primary_axis!r} column for the primary axis")
    df = df.copy()
    if "shots" not in df:
        df["shots"] = 0
    if "seed" not in df:
        df["seed"] = 0
    if "member" not in df:
        df["member"] = df[cfg.primary_axis].map(lambda v: _fmt(float(v)))
        warnings.append(f"no 'member' column: members named by {cfg.primary_axis}")
    df["member"] = df["member"].astype(str)
    df["shots"] = pd.to_numeric(df["shots"], errors="coerce").fillna(0).astype(int)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    axes = []
    for axis in cfg.scale_axes:
        if axis not in df.columns:
            warnings.append(f"scale axis {axis!r} not in the results: skipped")
            continue
        df[axis] = pd.to_numeric(df[axis], errors="coerce")
        axes.append(axis)
    if cfg.trial_column in df.columns:
        # The evaluator writes one aggregate row per measurement (trial < 0) and optionally one row per
        # few-shot trial; use the aggregates when there are any, so that trials are not counted twice.
        trial = pd.to_numeric(df[cfg.trial_column], errors="coerce")
        aggregate = trial.isna() | (trial < 0)
        if aggregate.any():
            df = df[aggregate]
    df["_final"] = df["step"] == df.groupby("run_id")["step"].transform("max")
    groups = [c for c in cfg.split_by if c in df.columns]
    if cfg.length_column in df.columns:
        per_len = df[cfg.length_column].notna()
        return df[~per_len], df[per_len & df["_final"]], groups, axes
    return df, df.iloc[0:0], groups, axes


def _entry(
    key: tuple[Any, ...],
    rows: pd.DataFrame,
    groups: list[str],
    axes: list[str],
    cfg: AnalysisConfig,
    warnings: list[str],
) -> dict[str, Any]:
    """Everything about one task × shots × group × metric."""
    task, shots, *gvals, metric = key
    spec, known = metric_spec(str(metric), cfg)
    if not known:
        warnings.append(f"metric {metric!r} not in the metric table: read as higher-is-better, continuous")
    final = rows[rows["_final"]]
    agg = {"value": ("value", "mean"), "seed": ("seed", "first")}
    agg.update({a: (a, "mean") for a in axes})
    obs = final.groupby(["member", "run_id"], dropna=False).agg(**agg).reset_index()
    curves: dict[str, Any] = {}
    fit_blocks: dict[str, Any] = {}
    bb: dict[str, Any] = {}
    pred: dict[str, Any] = {}
    low = high = None
    for axis in axes:
        o = obs[np.isfinite(obs[axis]) & (obs[axis] > 0)]
        curve = build_curve(o, axis, None, cfg, "member")
        curves[axis] = curve
        px, py = (
            np.array(curve["points"]["x"], float),
            np.array([np.nan if v is None else v for v in curve["points"]["y"]], float),
        )
        fit_blocks[axis] = fits.fit_to_json(px, py, cfg.criterion, cfg.max_k, cfg.n_boot, cfg.ci, cfg.seed)
        lo_a, hi_a = resolve_bounds(spec, curve["mean"], final)
        if axis == cfg.primary_axis:
            low, high = lo_a, hi_a
        bb[axis] = bigbench.score_block(
            curve["x"], curve["mean"], lo_a, hi_a, not spec.higher_is_better, cfg.max_breakthroughness
        )
        pred[axis] = fits.predict_holdout(
            px,
            py,
            holdout=cfg.holdout,
            min_points=cfg.min_points,
            criterion=cfg.criterion,
            max_k=cfg.max_k,
            n_boot=cfg.n_boot,
            ci=cfg.ci,
            seed=cfg.seed,
            members=dict(zip(curve["x"], curve["members"], strict=True)),
        )
    time_col = cfg.time_axis
    curves[time_col] = []
    fits_step: dict[str, Any] = {}
    for member, g in rows.groupby("member", sort=False):
        t_obs = g.groupby(["run_id", time_col], dropna=False).agg(
            value=("value", "mean"), seed=("seed", "first")
        )
        t_obs = t_obs.reset_index()
        t_obs["member"] = member
        c = build_curve(t_obs, time_col, str(member), cfg, time_col)
        curves[time_col].append(c)
        if cfg.fit_time_axis:
            ty = np.array([np.nan if v is None else v for v in c["points"]["y"]], float)
            fits_step[str(member)] = fits.fit_to_json(
                np.array(c["points"]["x"], float), ty, cfg.criterion, cfg.max_k, cfg.n_boot, cfg.ci, cfg.seed
            )
    # Order training curves like the scale axis, smallest member first.
    order = (
        {m: i for i, m in enumerate(curves[cfg.primary_axis]["members"])}
        if cfg.primary_axis in curves
        else {}
    )
    curves[time_col].sort(key=lambda c: order.get(c["label"], len(order)))
    primary = curves[cfg.primary_axis]
    if spec.kind == "discontinuous":
        pu = scaling.passuntil_fit(primary["x"], primary["mean"], cfg.min_points, cfg.min_delta_aic)
    else:
        pu = scaling.passuntil_fit([], [], cfg.min_points, cfg.min_delta_aic)
        pu.update(status="undefined", reason="defined for pass-rate (discontinuous) metrics only")
    pu = {"axis": cfg.primary_axis, **pu}
    return {
        "task": str(task),
        "shots": int(shots),
        "group": _group_dict(groups, tuple(gvals)),
        "metric": str(metric),
        "higher_is_better": spec.higher_is_better,
        "kind": spec.kind,
        "compounds": spec.compounds,
        "chance": low,
        "best": high,
        "curves": curves,
        "fits": fit_blocks,
        "fits_step": fits_step,
        "bigbench": bb,
        "prediction": pred,
        "passuntil": pu,
        "verdict": classify(bb[cfg.primary_axis], fit_blocks[cfg.primary_axis], cfg.primary_axis, cfg),
    }


def mirage_check(entries: list[dict[str, Any]], axis: str, multi_token: bool = False) -> dict[str, Any]:
    """Schaeffer et al. 2023: does a jump under a discontinuous metric survive under a continuous one?

    With `multi_token` (the task's answers have more than one token), a compounding metric (the answer's
    probability, exp Σ log p) is set aside: like exact match it is ~p^L of per-token quality, so it neither
    confirms a jump nor serves as the smooth control.
    """
    first = entries[0]
    metrics = []
    for e in entries:
        bb, fit = e["bigbench"].get(axis, {}), e["fits"].get(axis, {})
        models = fit.get("models") or {}
        metrics.append(
            {
                "metric": e["metric"],
                "kind": e["kind"],
                "compounds": bool(multi_token and e.get("compounds", False)),
                "verdict": e["verdict"]["verdict"],
                "best_fit": fit.get("best"),
                "breakthroughness": bb.get("breakthroughness"),
                "clipped": bool(bb.get("clipped", False)),
                "delta_vs_line": fit.get("delta_vs_line"),
                # How well the chosen law and the smooth one (a line in log scale) fit the per-seed points.
                "r2": (models.get(fit.get("best")) or {}).get("r2"),
                "r2_line": (models.get("line") or {}).get("r2"),
                "threshold": e["verdict"].get("threshold"),
            }
        )
    jumps = [m["metric"] for m in metrics if m["kind"] == "discontinuous" and m["verdict"] == "emergent"]
    cont = [m for m in metrics if m["kind"] == "continuous" and not m["compounds"]]
    cont_jumps = [m["metric"] for m in cont if m["verdict"] == "emergent"]
    compounding = [m for m in metrics if m["compounds"]]
    if not jumps:
        outcome, survives, reason = "no_jump", None, "no discontinuous metric is emergent"
    elif not cont:
        outcome, survives = "untested", None
        reason = f"emergent under {', '.join(jumps)}; no continuous metric to check it against"
    elif cont_jumps:
        outcome, survives = "robust", True
        reason = f"the jump under {', '.join(jumps)} survives under {', '.join(cont_jumps)}"
    else:
        outcome, survives = "mirage", False
        smooth = ", ".join(f"{m['metric']} ({m['verdict']})" for m in cont)
        reason = (
            f"the jump under {', '.join(jumps)} disappears under {smooth}: "
            "consistent with an artefact of the metric (Schaeffer et al. 2023)"
        )
    if compounding and jumps:
        reason += (
            "; "
            + ", ".join(f"{m['metric']} ({m['verdict']})" for m in compounding)
            + " compounds over the answer's tokens as exact match does and is not a control"
        )
    return {
        "task": first["task"],
        "shots": first["shots"],
        "group": first["group"],
        "axis": axis,
        "outcome": outcome,
        "jump_survives": survives,
        "metrics": metrics,
        "reason": reason,
    }


def task_verdict(entries: list[dict[str, Any]], mirage: dict[str, Any]) -> dict[str, Any]:
    """One verdict per task × shots × group, with a one-line summary over its metrics."""
    by_metric = {e["metric"]: e["verdict"]["verdict"] for e in entries}
    parts = []
    for e in entries:
        v = e["verdict"]
        text = f"{v['verdict']} under {e['metric']}"
        th = v.get("threshold")
        if v["verdict"] == "emergent" and th:
            unit = AXIS_UNITS.get(v["axis"], v["axis"])
            text += f" at ~{_fmt(th['x0'])} {unit}"
            if th.get("ci"):
                text += f" [{_fmt(th['ci'][0])}, {_fmt(th['ci'][1])}]"
            if th.get("bracket"):
                text += f" (between sampled {_fmt(th['bracket'][0])} and {_fmt(th['bracket'][1])})"
        parts.append(text)
    kinds = {e["metric"]: e["kind"] for e in entries}
    compounding = {m["metric"] for m in mirage["metrics"] if m.get("compounds")}
    verdicts = set(by_metric.values())
    cont_emergent = any(
        kinds[m] == "continuous" and m not in compounding and v == "emergent" for m, v in by_metric.items()
    )
    if mirage["outcome"] in ("robust", "untested") or cont_emergent:
        verdict = "emergent"
    elif mirage["outcome"] == "mirage":
        verdict = "mirage"
    elif "smooth" in verdicts:
        verdict = "smooth"
    elif verdicts == {"absent"}:
        verdict = "absent"
    else:
        verdict = "inconclusive"
    first = entries[0]
    return {
        "task": first["task"],
        "shots": first["shots"],
        "group": first["group"],
        "verdict": verdict,
        "summary": "; ".join(parts),
        "by_metric": by_metric,
    }


def _multi_token_tasks(length_rows: pd.DataFrame) -> set[str]:
    """Tasks whose answers were measured at more than one token (the per-length rows of the p^L check)."""
    if length_rows is None or length_rows.empty or "answer_len" not in length_rows.columns:
        return set()
    longest = length_rows.groupby("task")["answer_len"].max()
    return {str(t) for t, n in longest.items() if n > 1}


def analyze_results(df: pd.DataFrame, cfg: AnalysisConfig | None = None) -> dict[str, Any]:
    """Analyse result rows (long format) into the analysis.json dictionary (docs/emergence-analysis.md)."""
    cfg = cfg if cfg is not None else AnalysisConfig()
    warnings: list[str] = []
    rows, length_rows, groups, axes = _prepare(df, cfg, warnings)
    keys = ["task", "shots", *groups, "metric"]
    entries = []
    for key, g in rows.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        log.debug("analysing %s", key)
        entries.append(_entry(key, g, groups, axes, cfg, warnings))
    mirage, tasks = [], []
    by_task: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for e in entries:
        by_task.setdefault((e["task"], e["shots"], tuple(e["group"].items())), []).append(e)
    multi = _multi_token_tasks(length_rows)
    for ents in by_task.values():
        m = mirage_check(ents, cfg.primary_axis, multi_token=ents[0]["task"] in multi)
        mirage.append(m)
        tasks.append(task_verdict(ents, m))
    study = None
    if "study" in df.columns and df["study"].notna().any():
        study = str(df["study"].dropna().iloc[0])
    specs = {name: METRICS.get(name) for name in METRICS.names()} | dict(cfg.metrics)
    out = {
        "schema_version": SCHEMA_VERSION,
        "study": study,
        "config": to_dict(cfg),
        "metrics": {name: to_dict(s) for name, s in sorted(specs.items())},
        "n_rows": len(df),
        "axes": {"scale": axes, "time": cfg.time_axis, "primary": cfg.primary_axis},
        "warnings": sorted(set(warnings)),
        "entries": entries,
        "mirage": mirage,
        "length_prediction": length_prediction(length_rows, groups, cfg),
        "tasks": tasks,
        # Kaplan / Chinchilla fits of held-out LM loss (analysis/scaling_law.py); [] without lm_loss rows.
        "scaling_laws": scaling_law.analyze_scaling_laws(rows, groups, cfg.n_boot, cfg.ci, cfg.seed),
    }
    held_out = seen_unseen(rows, groups)
    if held_out is not None:  # only studies with held-out tasks get the key (docs/studies.md)
        out["held_out"] = held_out
    return json_safe(out)


def json_safe(obj: Any) -> Any:
    """Plain JSON data: NaN/±inf become None, numpy scalars become Python numbers, tuples become lists."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(to_dict(obj))
    return obj


def load_config(data: dict[str, Any] | None) -> AnalysisConfig:
    """Build an AnalysisConfig from plain data (e.g. a study's `analysis:` section)."""
    return from_dict(AnalysisConfig, data or {}, where="analysis")


def analyze_study(study_dir: str | Path, cfg: AnalysisConfig | None = None) -> dict[str, Any]:
    """Read STUDY_DIR/results.parquet, analyse it and write STUDY_DIR/analysis.json atomically."""
    study_dir = Path(study_dir)
    path = study_dir / "results.parquet"
    if not path.is_file():
        raise UserError(f"no results to analyse: {path} not found (run the study's evaluation first)")
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a torn or foreign file
        raise UserError(f"{path}: cannot read parquet: {e}") from None
    if df.empty:
        raise UserError(f"{path}: no result rows")
    result = analyze_results(df, cfg)
    out_path = study_dir / "analysis.json"
    # Other analyses (e.g. "mechanisms") may have added top-level keys of their own: keep them.
    if out_path.is_file():
        try:
            old = read_json(out_path)
        except UserError:
            old = None
        if isinstance(old, dict):
            result = {**{k: v for k, v in old.items() if k not in result}, **result}
    write_json(out_path, result)
    return result
