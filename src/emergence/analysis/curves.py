"""Curves of a metric over scale and over training: means over seeds with bootstrap bands, every point kept.

A scale curve has one point per member (its mean x over runs) at the final step of each run; a training
curve has one point per step of one member. `resolve_bounds` turns the metric table's chance and best rules
into the (low, high) of the normalised score.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from emergence.analysis.settings import AnalysisConfig
from emergence.metric_table import MetricSpec


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
