"""Shape fits of a score curve in log-scale: straight line, sigmoid and hinge, compared by AIC/AICc/BIC.

All models live on u = log10(x) of the scale axis (parameters, FLOPs or steps), REFERENCES §4:

    line     y = a + b·u
    hinge    y = a + b·max(0, u − u0)                        threshold x0 = 10**u0
    sigmoid  y = lo + (hi − lo) / (1 + exp(−k (u − u0)))      threshold x0, sharpness k (per decade)

    y                         hinge:        sigmoid:        line:
    │               ╱              ____╱          ____           ╱
    │          ____╱          ____╱          ____╱           ╱
    └───────────────► u      u0               u0

Both non-linear models are *conditionally linear*: for a fixed u0 (and k) the remaining parameters solve an
ordinary least-squares problem. We profile them over a grid of u0 (and k) — which makes the fit robust to bad
starting points, the usual failure of sigmoid fits — and polish the best grid point with a bounded
`scipy.optimize` solver. Nothing here raises on degenerate data (constant curves, two points): the result
carries a status instead.

Information criteria use the Gaussian log-likelihood with the noise variance counted as a parameter
(k = #parameters + 1): AIC = n·ln(RSS/n) + 2k, AICc = AIC + 2k(k+1)/(n − k − 1) (Hurvich & Tsai 1989;
Burnham & Anderson recommend it when n/k < 40), BIC = n·ln(RSS/n) + k·ln n.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import optimize

Criterion = Literal["auto", "aic", "aicc", "bic"]
MODEL_NAMES = ("line", "hinge", "sigmoid")
# Free parameters of each model's mean (the noise variance adds one more in the criteria).
N_PARAMS = {"line": 2, "hinge": 3, "sigmoid": 4}
# Distinct x values needed: one more than the mean's parameters, so that a model can never interpolate the
# scale points exactly (a 4-parameter sigmoid through 4 points says nothing about a threshold).
MIN_DISTINCT_X = {name: k + 1 for name, k in N_PARAMS.items()}
PLATEAU_MARGIN = 0.5  # sigmoid plateaus may lie this fraction of the observed y range beyond the data
_GRID_U0 = 41
_GRID_K = 9


@dataclass(frozen=True)
class ModelFit:
    """One fitted model: parameters, goodness of fit and information criteria."""

    name: str
    status: str  # "ok" | "not_enough_data" | "failed"
    params: dict[str, float] = field(default_factory=dict)
    rss: float | None = None
    k: int = 0
    aic: float | None = None
    aicc: float | None = None
    bic: float | None = None
    r2: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the fit produced parameters."""
        return self.status == "ok"

    def predict(self, u: np.ndarray | float) -> np.ndarray:
        """Evaluate the fitted mean at u = log10(x)."""
        u = np.asarray(u, dtype=float)
        p = self.params
        if self.name == "line":
            return p["a"] + p["b"] * u
        if self.name == "hinge":
            return p["a"] + p["b"] * np.maximum(0.0, u - p["log10_x0"])
        if self.name == "sigmoid":
            return p["lo"] + (p["hi"] - p["lo"]) * _logistic(p["k"] * (u - p["log10_x0"]))
        raise ValueError(f"name: unknown model {self.name!r}")

    def criterion(self, which: str) -> float | None:
        """The named information criterion ("aic", "aicc" or "bic")."""
        return {"aic": self.aic, "aicc": self.aicc, "bic": self.bic}[which]

    def to_json(self, delta: float | None = None) -> dict[str, Any]:
        """Plain data for analysis.json."""
        return {
            "status": self.status,
            "params": dict(self.params),
            "rss": self.rss,
            "k": self.k,
            "aic": self.aic,
            "aicc": self.aicc,
            "bic": self.bic,
            "r2": self.r2,
            "delta": delta,
        }


@dataclass(frozen=True)
class FitResult:
    """Every model fitted to one curve, and the one the criterion prefers."""

    status: str  # "ok" | "not_enough_data" | "constant"
    reason: str | None
    n_obs: int
    n_x: int
    criterion: str
    models: dict[str, ModelFit]
    best: str | None

    def delta_vs_line(self) -> float | None:
        """criterion(line) − criterion(best): how much better the chosen model is than a straight line."""
        if self.best is None or "line" not in self.models:
            return None
        c_line = self.models["line"].criterion(self.criterion)
        c_best = self.models[self.best].criterion(self.criterion)
        if c_line is None or c_best is None:
            return None
        return float(c_line - c_best)


def _logistic(z: np.ndarray) -> np.ndarray:
    # Clipping keeps exp() finite for very sharp sigmoids; the value saturates long before ±50.
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))


def _finite(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _score(name: str, y: np.ndarray, yhat: np.ndarray, params: dict[str, float]) -> ModelFit:
    n = y.size
    k = N_PARAMS[name] + 1
    tss = float(np.sum((y - y.mean()) ** 2))
    rss_raw = float(np.sum((y - yhat) ** 2))
    # Floor RSS so that an exact fit gives a very good, finite criterion instead of −inf.
    rss = max(rss_raw, 1e-12 * (tss + 1e-12))
    ll = n * math.log(rss / n)
    aic = ll + 2 * k
    aicc = aic + 2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else None
    bic = ll + k * math.log(n)
    r2 = 1.0 - rss_raw / tss if tss > 0 else None
    return ModelFit(
        name=name,
        status="ok",
        params={key: float(v) for key, v in params.items()},
        rss=rss_raw,
        k=k,
        aic=_finite(aic),
        aicc=_finite(aicc) if aicc is not None else None,
        bic=_finite(bic),
        r2=_finite(r2) if r2 is not None else None,
    )


def fit_line(u: np.ndarray, y: np.ndarray) -> ModelFit:
    """Least-squares straight line y = a + b·u."""
    u, y = np.asarray(u, float), np.asarray(y, float)
    if np.unique(u).size < 2:
        return ModelFit("line", "not_enough_data", k=N_PARAMS["line"] + 1)
    b, a = np.polyfit(u, y, 1)
    return _score("line", y, a + b * u, {"a": a, "b": b})


def _lstsq_columns(cols: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched 2-column least squares: cols (G, n, 2), y (n,) → coefficients (G, 2), RSS (G,)."""
    # Normal equations of a 2×2 system, solved in closed form for every grid point at once.
    c0, c1 = cols[..., 0], cols[..., 1]  # (G, n)
    s00, s01, s11 = (c0 * c0).sum(-1), (c0 * c1).sum(-1), (c1 * c1).sum(-1)
    t0, t1 = (c0 * y).sum(-1), (c1 * y).sum(-1)
    det = s00 * s11 - s01 * s01
    with np.errstate(divide="ignore", invalid="ignore"):
        beta0 = (s11 * t0 - s01 * t1) / det
        beta1 = (s00 * t1 - s01 * t0) / det
    coef = np.stack([beta0, beta1], axis=-1)
    resid = y - (c0 * beta0[:, None] + c1 * beta1[:, None])
    rss = (resid**2).sum(-1)
    rss[~np.isfinite(rss) | (np.abs(det) < 1e-12)] = np.inf
    return coef, rss


def fit_hinge(u: np.ndarray, y: np.ndarray) -> ModelFit:
    """Hinge y = a + b·max(0, u − u0), u0 within the observed range; profiled over u0, then polished."""
    u, y = np.asarray(u, float), np.asarray(y, float)
    lo_u, hi_u = float(u.min()), float(u.max())
    if np.unique(u).size < MIN_DISTINCT_X["hinge"]:
        return ModelFit("hinge", "not_enough_data", k=N_PARAMS["hinge"] + 1)

    def rss_at(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.maximum(0.0, u[None, :] - grid[:, None])  # (G, n)
        cols = np.stack([np.ones_like(h), h], axis=-1)  # (G, n, 2)
        return _lstsq_columns(cols, y)

    # u0 at the top of the range makes the hinge column all zeros (a constant, no slope): stop short of it.
    span = hi_u - lo_u
    grid = np.linspace(lo_u, hi_u - 1e-3 * span, 200)
    coef, rss = rss_at(grid)
    if not np.isfinite(rss).any():
        return ModelFit("hinge", "failed", k=N_PARAMS["hinge"] + 1)
    i = int(np.argmin(rss))
    step = grid[1] - grid[0]
    res = optimize.minimize_scalar(
        lambda t: float(rss_at(np.array([t]))[1][0]),
        bounds=(max(lo_u, grid[i] - step), min(grid[-1], grid[i] + step)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    u0 = float(res.x) if res.success and res.fun <= rss[i] else float(grid[i])
    coef, _ = rss_at(np.array([u0]))
    a, b = coef[0]
    params = {"a": a, "b": b, "log10_x0": u0}
    return _score("hinge", y, a + b * np.maximum(0.0, u - u0), params)


def fit_sigmoid(u: np.ndarray, y: np.ndarray, max_k: float = 50.0, n_starts: int = 3) -> ModelFit:
    """Sigmoid in u with u0 in the observed range and 0 < k ≤ max_k; grid over (u0, k), then polished."""
    u, y = np.asarray(u, float), np.asarray(y, float)
    lo_u, hi_u = float(u.min()), float(u.max())
    if np.unique(u).size < MIN_DISTINCT_X["sigmoid"]:
        return ModelFit("sigmoid", "not_enough_data", k=N_PARAMS["sigmoid"] + 1)
    span = hi_u - lo_u
    # Plateaus within half the observed range beyond the data: otherwise an exponential-looking curve is
    # fitted by the foot of a sigmoid whose midpoint (the "threshold") sits at the edge, under a fake plateau.
    y_span = float(np.ptp(y)) or 1.0
    y_lb, y_ub = plateau_bounds(y)
    # k is per decade of x; a decreasing curve is a sigmoid with hi < lo, so k > 0 suffices.
    k_min = min(0.5 / span, max_k)
    lk_lo, lk_hi = math.log(k_min), math.log(max_k)

    def grid_fit(u0s: np.ndarray, lks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        uu0, kk = np.meshgrid(u0s, np.exp(lks), indexing="ij")
        uu0, kk = uu0.ravel(), kk.ravel()
        s = _logistic(kk[:, None] * (u[None, :] - uu0[:, None]))  # (G, n)
        coef, rss = _lstsq_columns(np.stack([1.0 - s, s], axis=-1), y)  # y = lo·(1 − s) + hi·s
        outside = ((coef < y_lb) | (coef > y_ub)).any(axis=1)
        if (~outside & np.isfinite(rss)).any():
            rss = np.where(outside, np.inf, rss)
        return uu0, kk, coef, rss

    # Coarse grid over (u0, log k), then a fine grid around the best cell, so that the solver starts in the
    # right basin (the same two stages, vectorised, serve the bootstrap replicates in `batch_fit`).
    du, dlk = span / (_GRID_U0 - 1), (lk_hi - lk_lo) / (_GRID_K - 1)
    uu0, kk, coef, rss = grid_fit(np.linspace(lo_u, hi_u, _GRID_U0), np.linspace(lk_lo, lk_hi, _GRID_K))
    if not np.isfinite(rss).any():
        return ModelFit("sigmoid", "failed", k=N_PARAMS["sigmoid"] + 1)
    i = int(np.argmin(rss))
    fine_u = np.clip(np.linspace(uu0[i] - du, uu0[i] + du, 21), lo_u, hi_u)
    fine_k = np.clip(np.linspace(math.log(kk[i]) - dlk, math.log(kk[i]) + dlk, 11), lk_lo, lk_hi)
    f_u0, f_k, f_coef, f_rss = grid_fit(fine_u, fine_k)
    uu0, kk = np.concatenate([f_u0, uu0]), np.concatenate([f_k, kk])
    coef, rss = np.concatenate([f_coef, coef]), np.concatenate([f_rss, rss])

    def resid(p: np.ndarray) -> np.ndarray:
        lo, hi, k, u0 = p
        return lo + (hi - lo) * _logistic(k * (u - u0)) - y

    def jac(p: np.ndarray) -> np.ndarray:
        # Analytic Jacobian (n, 4): finite differences cost 5 residual calls and dominate bootstrap time.
        lo, hi, k, u0 = p
        s = _logistic(k * (u - u0))
        ds = (hi - lo) * s * (1.0 - s)
        return np.stack([1.0 - s, s, ds * (u - u0), -ds * k], axis=1)

    best_p, best_rss = None, np.inf
    # Polish the best few grid points: sigmoid likelihoods are multi-modal in (u0, k).
    for i in np.argsort(rss)[:n_starts]:
        if not np.isfinite(rss[i]):
            continue
        p0 = np.array([coef[i, 0], coef[i, 1], kk[i], uu0[i]])
        lb = [y_lb, y_lb, k_min * 0.5, lo_u]
        ub = [y_ub, y_ub, max_k, hi_u]
        p0 = np.clip(p0, np.array(lb) + 1e-12, np.array(ub) - 1e-12)
        try:
            # MINPACK Levenberg-Marquardt is ~4x faster than the bounded trust-region solver (it matters in
            # bootstraps); when it leaves the bounds, solve again with the bounds enforced.
            # Short budget: when the unbounded optimum runs off to an infinite plateau, LM wanders for long.
            sol = optimize.least_squares(
                resid, p0, jac=jac, method="lm", x_scale=[y_span, y_span, 1.0, 1.0], max_nfev=40
            )
            if sol.status <= 0 or not (np.all(sol.x >= lb) and np.all(sol.x <= ub)):
                sol = optimize.least_squares(
                    resid, p0, jac=jac, bounds=(lb, ub), x_scale=[y_span, y_span, 1.0, 1.0], max_nfev=200
                )
            cand, cand_rss = sol.x, float(np.sum(sol.fun**2))
        except (ValueError, np.linalg.LinAlgError):
            cand, cand_rss = p0, float(rss[i])
        if cand_rss > rss[i]:  # the solver never gets to make the grid answer worse
            cand, cand_rss = p0, float(rss[i])
        if cand_rss < best_rss:
            best_p, best_rss = cand, cand_rss
    if best_p is None:
        return ModelFit("sigmoid", "failed", k=N_PARAMS["sigmoid"] + 1)
    lo, hi, k, u0 = (float(v) for v in best_p)
    params = {"lo": lo, "hi": hi, "k": k, "log10_x0": u0}
    return _score("sigmoid", y, lo + (hi - lo) * _logistic(k * (u - u0)), params)


FITTERS: dict[str, Callable[..., ModelFit]] = {"line": fit_line, "hinge": fit_hinge, "sigmoid": fit_sigmoid}


def _fit_one(name: str, u: np.ndarray, y: np.ndarray, max_k: float) -> ModelFit:
    try:
        if name == "sigmoid":
            return fit_sigmoid(u, y, max_k=max_k)
        return FITTERS[name](u, y)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError, RuntimeError):
        return ModelFit(name, "failed", k=N_PARAMS[name] + 1)


def resolve_criterion(criterion: Criterion, n_obs: int) -> str:
    """ "auto" → AICc when n/k_max < 40 (small samples), else AIC."""
    if criterion != "auto":
        return criterion
    k_max = max(N_PARAMS.values()) + 1
    return "aicc" if n_obs / k_max < 40 else "aic"


def fit_curve(x: np.ndarray, y: np.ndarray, criterion: Criterion = "auto", max_k: float = 50.0) -> FitResult:
    """Fit line, hinge and sigmoid to (x, y) in log10(x) and pick one by the information criterion."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    u, y = np.log10(x[keep]), y[keep]
    n_obs, n_x = int(y.size), int(np.unique(u).size)
    crit = resolve_criterion(criterion, n_obs)
    if n_x < 3 or n_obs < 4:
        reason = f"{n_x} distinct x and {n_obs} observations (need 3 and 4)"
        return FitResult("not_enough_data", reason, n_obs, n_x, crit, {}, None)
    if float(np.ptp(y)) <= 1e-12:
        line = _score("line", y, np.full_like(y, y.mean()), {"a": float(y.mean()), "b": 0.0})
        return FitResult("constant", "every value is the same", n_obs, n_x, crit, {"line": line}, "line")
    models = {name: _fit_one(name, u, y, max_k) for name in MODEL_NAMES}
    scored = {n: m.criterion(crit) for n, m in models.items() if m.ok and m.criterion(crit) is not None}
    if not scored:
        return FitResult("not_enough_data", f"no model has a finite {crit}", n_obs, n_x, crit, models, None)
    best = min(scored, key=lambda n: (scored[n], N_PARAMS[n]))
    return FitResult("ok", None, n_obs, n_x, crit, models, best)


def threshold_model(result: FitResult) -> tuple[str | None, bool]:
    """The model whose u0 is the threshold: the best if it has one, else the better of hinge and sigmoid."""
    if result.best in ("hinge", "sigmoid"):
        return result.best, True
    cands = {
        n: result.models[n].criterion(result.criterion)
        for n in ("hinge", "sigmoid")
        if n in result.models
        and result.models[n].ok
        and result.models[n].criterion(result.criterion) is not None
    }
    if not cands:
        return None, False
    return min(cands, key=lambda n: cands[n]), False


def _group_indices(u: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(u == v) for v in np.unique(u)]


def bootstrap_weights(u: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) resampling counts: each scale point's seeds drawn with replacement, as observation weights.

    A resample with replacement is the same least-squares problem as the original data weighted by how often
    each observation was drawn, which lets every replicate be solved at once with matrix products.
    """
    w = np.zeros((n_boot, u.size))
    for g in _group_indices(u):
        draws = rng.integers(0, g.size, size=(n_boot, g.size))  # (B, m) indices into this point's seeds
        for j, obs in enumerate(g):
            w[:, obs] = (draws == j).sum(axis=1)
    return w


_BATCH_HINGE_U0 = 321


def _batch_lstsq(
    c0: np.ndarray, c1: np.ndarray, ys: np.ndarray, ws: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted 2-column least squares for B data sets and G column pairs → (b0, b1, rss), each (B, G).

    c0, c1 are (G, n) shared by every data set, or (B, G, n) per data set; ys, ws are (B, n).
    """
    wy = ws * ys  # (B, n)
    # einsum, not `@`: these products are tiny, and a multi-threaded BLAS on a busy machine spends ~100x
    # longer coordinating threads than computing.
    spec = "bn,gn->bg" if c0.ndim == 2 else "bn,bgn->bg"
    s00, s01, s11 = (np.einsum(spec, ws, c) for c in (c0 * c0, c0 * c1, c1 * c1))
    t0, t1 = np.einsum(spec, wy, c0), np.einsum(spec, wy, c1)
    yy = (wy * ys).sum(axis=1, keepdims=True)
    det = s00 * s11 - s01 * s01
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        b0 = (s11 * t0 - s01 * t1) / det
        b1 = (s00 * t1 - s01 * t0) / det
        rss = yy - 2 * (b0 * t0 + b1 * t1) + b0 * b0 * s00 + 2 * b0 * b1 * s01 + b1 * b1 * s11
    rss = np.where(np.isfinite(rss) & (det > 1e-12 * s00 * s11), rss, np.inf)
    return b0, b1, rss


def plateau_bounds(y: np.ndarray) -> tuple[float, float]:
    """Allowed range of the sigmoid plateaus: the observed y range widened by PLATEAU_MARGIN on each side."""
    y_span = float(np.ptp(y)) or 1.0
    return float(y.min()) - PLATEAU_MARGIN * y_span, float(y.max()) + PLATEAU_MARGIN * y_span


def _mask_plateaus(
    b0: np.ndarray, b1: np.ndarray, rss: np.ndarray, bounds: tuple[float, float]
) -> np.ndarray:
    """Set the RSS of cells whose plateaus leave the bounds to inf (kept when nothing is feasible)."""
    out = (np.minimum(b0, b1) < bounds[0]) | (np.maximum(b0, b1) > bounds[1])
    feasible = np.isfinite(np.where(out, np.inf, rss)).any(axis=1, keepdims=True)
    return np.where(out & feasible, np.inf, rss)


def batch_fit(
    model: str,
    u: np.ndarray,
    ys: np.ndarray,
    ws: np.ndarray,
    max_k: float = 50.0,
    bounds: tuple[float, float] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Fit one model to B weighted data sets at once on grids: (params, each (B,), and ok (B,)).

    `ys` and `ws` are (B, n): per-replicate values (residual bootstrap) and weights (seed bootstrap). The
    hinge is profiled on u0 every span/320 decades; the sigmoid on the coarse (u0, k) grid of `fit_sigmoid`,
    then on a fine grid around each replicate's best cell (u0 every span/400). No solver is needed, which is
    what makes bootstrap CIs cheap.
    """
    u = np.asarray(u, float)
    ys, ws = np.atleast_2d(np.asarray(ys, float)), np.atleast_2d(np.asarray(ws, float))
    lo_u, hi_u = float(u.min()), float(u.max())
    span = hi_u - lo_u
    rows = np.arange(ys.shape[0])
    if model == "line":
        b0, b1, rss = _batch_lstsq(np.ones((1, u.size)), u[None, :], ys, ws)
        return {"a": b0[:, 0], "b": b1[:, 0]}, np.isfinite(rss[:, 0])
    if model == "hinge":
        grid_u0 = np.linspace(lo_u, hi_u - 1e-3 * span, _BATCH_HINGE_U0)
        c1 = np.maximum(0.0, u[None, :] - grid_u0[:, None])  # (G, n)
        b0, b1, rss = _batch_lstsq(np.ones_like(c1), c1, ys, ws)
        best = np.argmin(rss, axis=1)
        return (
            {"a": b0[rows, best], "b": b1[rows, best], "log10_x0": grid_u0[best]},
            np.isfinite(rss[rows, best]),
        )
    if bounds is None:
        bounds = plateau_bounds(ys[0][ws[0] > 0] if (ws[0] > 0).any() else ys[0])
    k_min = min(0.5 / span, max_k) if span > 0 else 1.0
    lk_lo, lk_hi = math.log(k_min), math.log(max_k)
    uu0, lkk = np.meshgrid(
        np.linspace(lo_u, hi_u, _GRID_U0), np.linspace(lk_lo, lk_hi, _GRID_K), indexing="ij"
    )
    uu0, lkk = uu0.ravel(), lkk.ravel()
    c1 = _logistic(np.exp(lkk)[:, None] * (u[None, :] - uu0[:, None]))  # (G, n)
    b0, b1, rss = _batch_lstsq(1.0 - c1, c1, ys, ws)
    rss = _mask_plateaus(b0, b1, rss, bounds)
    best = np.argmin(rss, axis=1)  # (B,)
    # Fine stage: a (21 × 7) grid around each replicate's coarse optimum.
    du, dlk = span / (_GRID_U0 - 1), (lk_hi - lk_lo) / (_GRID_K - 1)
    fu = np.clip(uu0[best][:, None] + np.linspace(-du, du, 21)[None, :], lo_u, hi_u)  # (B, 21)
    fk = np.clip(lkk[best][:, None] + np.linspace(-dlk, dlk, 7)[None, :], lk_lo, lk_hi)  # (B, 7)
    fu, fk = np.repeat(fu, 7, axis=1), np.tile(fk, (1, 21))  # (B, 147)
    c1f = _logistic(np.exp(fk)[:, :, None] * (u[None, None, :] - fu[:, :, None]))  # (B, 147, n)
    f0, f1, frss = _batch_lstsq(1.0 - c1f, c1f, ys, ws)
    frss = _mask_plateaus(f0, f1, frss, bounds)
    j = np.argmin(frss, axis=1)
    use_fine = frss[rows, j] <= rss[rows, best]
    params = {
        "lo": np.where(use_fine, f0[rows, j], b0[rows, best]),
        "hi": np.where(use_fine, f1[rows, j], b1[rows, best]),
        "k": np.exp(np.where(use_fine, fk[rows, j], lkk[best])),
        "log10_x0": np.where(use_fine, fu[rows, j], uu0[best]),
    }
    return params, np.isfinite(np.minimum(frss[rows, j], rss[rows, best]))


def batch_predict(model: str, params: dict[str, np.ndarray], u: np.ndarray) -> np.ndarray:
    """Evaluate B parameter sets from `batch_fit` at u: (B, len(u))."""
    u = np.asarray(u, float)[None, :]
    p = {k: np.asarray(v, float)[:, None] for k, v in params.items()}
    if model == "line":
        return p["a"] + p["b"] * u
    if model == "hinge":
        return p["a"] + p["b"] * np.maximum(0.0, u - p["log10_x0"])
    return p["lo"] + (p["hi"] - p["lo"]) * _logistic(p["k"] * (u - p["log10_x0"]))


def bootstrap_threshold(
    x: np.ndarray,
    y: np.ndarray,
    model: str,
    n_boot: int = 200,
    ci: float = 0.9,
    seed: int = 0,
    max_k: float = 50.0,
) -> tuple[tuple[float, float] | None, int]:
    """Percentile CI of log10 x0 from refits on seeds resampled within each scale point (None if 1 seed)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    u, y = np.log10(x[keep]), y[keep]
    groups = _group_indices(u)
    if all(g.size < 2 for g in groups) or n_boot <= 0 or model not in ("hinge", "sigmoid"):
        return None, 0
    w = bootstrap_weights(u, n_boot, np.random.default_rng(seed))
    params, ok = batch_fit(model, u, np.broadcast_to(y, w.shape), w, max_k, plateau_bounds(y))
    # A replicate whose drawn values are all equal has no shape to fit.
    drawn_min = np.where(w > 0, y[None, :], np.inf).min(axis=1)
    drawn_max = np.where(w > 0, y[None, :], -np.inf).max(axis=1)
    ok &= drawn_max - drawn_min > 1e-12
    u0s = params["log10_x0"][ok]
    if u0s.size < 2:
        return None, int(u0s.size)
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(u0s, [alpha, 1.0 - alpha])
    return (float(lo), float(hi)), int(u0s.size)


def _bracket(xs: np.ndarray, x0: float) -> list[float]:
    """The sampled scale points on either side of x0: a step between two sizes is located only to that gap."""
    ux = np.unique(xs)
    below, above = ux[ux <= x0], ux[ux >= x0]
    return [float(below.max() if below.size else ux.min()), float(above.min() if above.size else ux.max())]


def fit_to_json(
    x: np.ndarray,
    y: np.ndarray,
    criterion: Criterion = "auto",
    max_k: float = 50.0,
    n_boot: int = 200,
    ci: float = 0.9,
    seed: int = 0,
    bootstrap: bool = True,
) -> dict[str, Any]:
    """Fit a curve and return the analysis.json "Fit" block (threshold with bootstrap CI, plotting grid)."""
    result = fit_curve(x, y, criterion=criterion, max_k=max_k)
    crit_best = result.models[result.best].criterion(result.criterion) if result.best else None
    models_json = {}
    for name, m in result.models.items():
        c = m.criterion(result.criterion)
        delta = c - crit_best if c is not None and crit_best is not None else None
        models_json[name] = m.to_json(delta)
    out: dict[str, Any] = {
        "status": result.status,
        "reason": result.reason,
        "n_obs": result.n_obs,
        "n_x": result.n_x,
        "criterion": result.criterion,
        "best": result.best,
        "models": models_json,
        "delta_vs_line": result.delta_vs_line(),
        "threshold": None,
        "curve": {"x": [], "y": []},
    }
    if result.best is None:
        return out
    xs = np.asarray(x, float)
    xs = xs[np.isfinite(xs) & (xs > 0)]
    grid_u = np.linspace(np.log10(xs.min()), np.log10(xs.max()), 50)
    out["curve"] = {
        "x": [float(v) for v in 10**grid_u],
        "y": [_finite(v) for v in result.models[result.best].predict(grid_u)],
    }
    if result.status != "ok":
        return out
    model, from_best = threshold_model(result)
    if model is None:
        return out
    u0 = result.models[model].params["log10_x0"]
    ci_u, n_ok = (None, 0)
    # The bootstrap is for thresholds the data choose; a threshold of a model that loses to the line is
    # reported without a CI (and saves the cost of refitting a curve nobody believes).
    if bootstrap and from_best:
        ci_u, n_ok = bootstrap_threshold(x, y, model, n_boot=n_boot, ci=ci, seed=seed, max_k=max_k)
    out["threshold"] = {
        "model": model,
        "from_best": from_best,
        "log10_x0": float(u0),
        "x0": float(10**u0),
        "ci_log10": list(ci_u) if ci_u else None,
        "ci": [float(10 ** ci_u[0]), float(10 ** ci_u[1])] if ci_u else None,
        "level": ci,
        "n_boot": n_boot if bootstrap and from_best else 0,
        "n_boot_ok": n_ok,
        "bracket": _bracket(xs, 10**u0),
    }
    return out


def predict_holdout(
    x: np.ndarray,
    y: np.ndarray,
    holdout: int = 1,
    min_points: int = 3,
    criterion: Criterion = "auto",
    max_k: float = 50.0,
    n_boot: int = 200,
    ci: float = 0.9,
    seed: int = 0,
    members: dict[float, str] | None = None,
) -> dict[str, Any]:
    """Fit on all but the largest `holdout` scale points and predict them, with a bootstrap interval."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    x, y = x[keep], y[keep]
    ux = np.unique(x)
    out: dict[str, Any] = {
        "status": "not_enough_data",
        "reason": None,
        "model": None,
        "n_fit": 0,
        "x": [],
        "members": [],
        "predicted": [],
        "measured": [],
        "abs_error": [],
        "interval": [],
        "in_interval": [],
        "level": ci,
    }
    n_fit = ux.size - holdout
    out["n_fit"] = max(n_fit, 0)
    if n_fit < min_points:
        out["reason"] = f"{max(n_fit, 0)} scale points left after holding out {holdout} (need {min_points})"
        return out
    cut = ux[n_fit - 1]
    train, test_x = x <= cut, ux[n_fit:]
    result = fit_curve(x[train], y[train], criterion=criterion, max_k=max_k)
    if result.best is None:
        out.update(status="failed", reason=result.reason)
        return out
    model = result.models[result.best]
    u_tr, y_tr, u_te = np.log10(x[train]), y[train], np.log10(test_x)
    pred = model.predict(u_te)
    resid = y_tr - model.predict(u_tr)
    rng = np.random.default_rng(seed)
    seeds_vary = any(np.sum(u_tr == v) > 1 for v in np.unique(u_tr))
    if n_boot <= 0:
        sims = np.empty((0, u_te.size))
    else:
        if seeds_vary:  # bootstrap over seeds within each scale point, as observation weights
            ws = bootstrap_weights(u_tr, n_boot, rng)
            ys = np.broadcast_to(y_tr, ws.shape)
        else:  # one seed per point: residual bootstrap
            ys = model.predict(u_tr)[None, :] + rng.choice(resid, size=(n_boot, resid.size), replace=True)
            ws = np.ones_like(ys)
        if result.status == "constant":
            sims = np.broadcast_to(pred, (n_boot, u_te.size))
        else:
            params, ok = batch_fit(result.best, u_tr, ys, ws, max_k, plateau_bounds(y_tr))
            sims = batch_predict(result.best, params, u_te)[ok]
        # Add one residual draw: the interval is for a new measurement, not only for the mean.
        sims = sims + rng.choice(resid, size=sims.shape, replace=True)
    a = (1.0 - ci) / 2.0
    if len(sims) >= 2:
        q = np.quantile(sims, [a, 1.0 - a], axis=0)  # (2, n_test)
        interval = [[_finite(q[0, i]), _finite(q[1, i])] for i in range(u_te.size)]
    else:
        interval = [[None, None] for _ in range(u_te.size)]
    measured = [float(np.mean(y[x == v])) for v in test_x]
    out.update(
        status="ok",
        model=result.best,
        x=[float(v) for v in test_x],
        members=[(members or {}).get(float(v), "") for v in test_x],
        predicted=[_finite(p) for p in pred],
        measured=measured,
        abs_error=[_finite(abs(p - m)) for p, m in zip(pred, measured, strict=True)],
        interval=interval,
        in_interval=[
            None if iv[0] is None or iv[1] is None else bool(iv[0] <= m <= iv[1])
            for iv, m in zip(interval, measured, strict=True)
        ],
    )
    return out
