"""The answer-length prediction of the metric-choice ("mirage") check: exact match ≈ p^L.

Schaeffer, Miranda and Koyejo (2023; REFERENCES §2): if a model's only competence is a per-token accuracy p
and its token errors are independent, an answer of L tokens is exactly right with probability p^L. Exact match
then rises sharply with scale while p rises smoothly, and it falls geometrically with answer length. This
module checks it on the evaluator's per-answer-length rows (`answer_len`, final step of each run):

    for every member × seed × answer length L:
        p_L        = token accuracy on the answers of length L (teacher-forced, answer tokens only)
        predicted  = p_L ** L
        measured   = exact match on the same answers (greedy generation)

Agreement over those points is weighted by the number of test items behind each (a length with 3 items counts
for 3, not as much as a length with 800). Two variants:

- `agreement` uses p_L of the same answers: it tests whether token errors within an answer are independent.
  Positively correlated errors (a wrong answer tends to be wrong in several places) give measured > predicted,
  so `bias` = mean(measured − predicted) is positive; independent errors give bias ≈ 0.
- `pooled` uses one p per member × seed, pooled over every answer token of every length
  (Σ_L n_L·L·p_L / Σ_L n_L·L): Schaeffer et al.'s stronger claim that a single per-token competence predicts
  exact match at every length.

`overall` carries, per member, the whole-test-set exact match (item-weighted over lengths) next to both
predictions, for the report's "exact match against parameters with p^L overlaid" figure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def predict_exact_match(p: float | np.ndarray, length: int | np.ndarray) -> np.ndarray:
    """Schaeffer et al. 2023: exact match of an L-token answer with independent token accuracy p is p^L."""
    return np.power(np.asarray(p, float), np.asarray(length, float))


def agreement(
    predicted: np.ndarray, measured: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, float | int | None]:
    """Weighted R², mean and largest absolute error, and bias (mean measured − predicted) of a prediction."""
    pred, meas = np.asarray(predicted, float), np.asarray(measured, float)
    w = np.ones_like(pred) if weights is None else np.asarray(weights, float)
    ok = np.isfinite(pred) & np.isfinite(meas) & np.isfinite(w) & (w > 0)
    pred, meas, w = pred[ok], meas[ok], w[ok]
    if pred.size == 0:
        return {"n_points": 0, "r2": None, "mae": None, "max_abs_error": None, "bias": None}
    err = meas - pred
    mean = np.average(meas, weights=w)
    tss = float(np.sum(w * (meas - mean) ** 2))
    rss = float(np.sum(w * err**2))
    # R² against the weighted mean of the measurements: 1 = the prediction explains every point; ≤ 0 = no
    # better than predicting the mean. Undefined (null) when every measurement is the same.
    r2 = 1.0 - rss / tss if tss > 1e-12 else None
    return {
        "n_points": int(pred.size),
        "r2": r2,
        "mae": float(np.average(np.abs(err), weights=w)),
        "max_abs_error": float(np.max(np.abs(err))),
        "bias": float(np.average(err, weights=w)),
    }


def _points(g: pd.DataFrame, tok: str, em: str, col: str, axis: str) -> pd.DataFrame:
    """Rows per member × seed × length: x, n (items), p, measured, predicted, p_pooled, predicted_pooled."""
    g = g.assign(n=pd.to_numeric(g["n"], errors="coerce") if "n" in g else 1.0)
    per = g.groupby(["member", "seed", col, "metric"], dropna=False).agg(
        value=("value", "mean"), x=(axis, "mean"), n=("n", "mean")
    )
    values = per["value"].unstack("metric")
    if tok not in values or em not in values:
        return pd.DataFrame()
    # Items behind each point: the exact-match row's n (the token row scores the same items).
    n_items = per["n"].unstack("metric")[em].fillna(1.0)
    pts = pd.DataFrame(
        {
            "x": per["x"].groupby(level=["member", "seed", col]).mean(),
            "n": n_items,
            "p": values[tok],
            "measured": values[em],
        }
    ).reset_index()
    pts = pts.rename(columns={col: "length"})
    pts = pts[np.isfinite(pts["p"]) & np.isfinite(pts["measured"])].copy()
    pts["length"] = pts["length"].astype(int)
    pts["predicted"] = predict_exact_match(pts["p"].to_numpy(), pts["length"].to_numpy())
    # One per-token accuracy per member × seed, pooled over every answer token of every length.
    tokens = pts["n"] * pts["length"]
    pooled = (pts["p"] * tokens).groupby([pts["member"], pts["seed"]]).sum() / tokens.groupby(
        [pts["member"], pts["seed"]]
    ).sum()
    pts["p_pooled"] = [pooled.loc[(m, s)] for m, s in zip(pts["member"], pts["seed"], strict=True)]
    pts["predicted_pooled"] = predict_exact_match(pts["p_pooled"].to_numpy(), pts["length"].to_numpy())
    return pts.sort_values(["x", "member", "seed", "length"]).reset_index(drop=True)


def _by_member_length(pts: pd.DataFrame) -> list[dict[str, Any]]:
    """Mean over seeds per member × length (predicted = mean of the per-seed p^L, not (mean p)^L)."""
    out = []
    for (member, length), g in pts.groupby(["member", "length"], sort=False):
        out.append(
            {
                "member": str(member),
                "x": float(g["x"].mean()),
                "length": int(length),
                "n": float(g["n"].mean()),
                "n_seeds": len(g),
                "p": float(g["p"].mean()),
                "predicted": float(g["predicted"].mean()),
                "predicted_pooled": float(g["predicted_pooled"].mean()),
                "measured": float(g["measured"].mean()),
            }
        )
    out.sort(key=lambda d: (d["x"], d["length"]))
    return out


def _overall(pts: pd.DataFrame) -> list[dict[str, Any]]:
    """Per member: whole-test-set exact match (item-weighted over lengths, seed mean) and predictions."""
    out = []
    for member, g in pts.groupby("member", sort=False):
        per_seed = []
        for _, s in g.groupby("seed"):
            w = s["n"].to_numpy(float)
            per_seed.append(
                [
                    np.average(s[c].to_numpy(float), weights=w)
                    for c in ("measured", "predicted", "predicted_pooled")
                ]
            )
        m = np.mean(np.array(per_seed), axis=0)
        out.append(
            {
                "member": str(member),
                "x": float(g["x"].mean()),
                "n_seeds": len(per_seed),
                "measured": float(m[0]),
                "predicted": float(m[1]),
                "predicted_pooled": float(m[2]),
            }
        )
    out.sort(key=lambda d: d["x"])
    return out


def length_check(
    pts_rows: pd.DataFrame, *, token_metric: str, em_metric: str, length_column: str, axis: str
) -> dict[str, Any] | None:
    """The p^L check of one task × shots × group from its per-length rows (None if a metric is missing)."""
    pts = _points(pts_rows, token_metric, em_metric, length_column, axis)
    if pts.empty:
        return None
    rows = _by_member_length(pts)
    errs = np.array([abs(r["predicted"] - r["measured"]) for r in rows])
    w = pts["n"].to_numpy(float)
    return {
        "token_metric": token_metric,
        "em_metric": em_metric,
        "axis": axis,
        "rows": rows,
        "mae": float(errs.mean()) if errs.size else None,
        "max_abs_error": float(errs.max()) if errs.size else None,
        "points": [
            {
                "member": str(r.member),
                "seed": None if pd.isna(r.seed) else int(r.seed),
                "x": float(r.x),
                "length": int(r.length),
                "n": float(r.n),
                "p": float(r.p),
                "predicted": float(r.predicted),
                "measured": float(r.measured),
            }
            for r in pts.itertuples()
        ],
        "agreement": agreement(pts["predicted"].to_numpy(), pts["measured"].to_numpy(), w),
        "pooled": agreement(pts["predicted_pooled"].to_numpy(), pts["measured"].to_numpy(), w),
        "overall": _overall(pts),
    }
