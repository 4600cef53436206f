"""Loss scaling laws: Kaplan et al. 2020 `L(N) = (N_c/N)^α` and Chinchilla `L(N, D) = E + A/N^α + B/D^β`.

REFERENCES §5 (and §4 for PassUntil). Published constants do not transfer across data and tokenizers, so we
fit our own:

- Kaplan: a straight line in log-log space, log L = α·log N_c − α·log N (α ≈ 0.076 on non-embedding parameters
  in the paper); R² is that of the log-log line.
- Chinchilla (Hoffmann et al. 2022, Approach 3): minimise the Huber loss (δ = 1e-3) between log L and the
  log of the prediction written as a log-sum-exp, log L̂ = LSE(a − α log N, b − β log D, e) with A = e^a,
  B = e^b, E = e^e, by L-BFGS, started from the best cells of an (α, β) grid where (E, A, B) solve a
  non-negative least-squares problem (the objective has many local minima). R² is reported on log L. Needs at
  least two distinct D (and N), else E and B/D^β cannot be told apart.
- PassUntil (Hu et al. 2023): a pass rate PU(N) ≈ exp(−c N^(−α)) makes log(−log PU) linear in log N; concave
  deviation signals "accelerated emergence".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize
from scipy.special import logsumexp


@dataclass(frozen=True)
class KaplanFit:
    """L(N) = (N_c/N)^α fitted in log-log space."""

    status: str  # "ok" | "not_enough_data"
    alpha: float | None = None
    n_c: float | None = None
    r2: float | None = None
    n_points: int = 0
    reason: str | None = None

    def predict(self, n: np.ndarray | float) -> np.ndarray:
        """Predicted loss at N."""
        if self.status != "ok" or self.alpha is None or self.n_c is None:
            raise ValueError("predict: the fit has no parameters")
        return np.power(self.n_c / np.asarray(n, float), self.alpha)

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "law": "kaplan",
            "status": self.status,
            "reason": self.reason,
            "alpha": self.alpha,
            "n_c": self.n_c,
            "r2": self.r2,
            "n_points": self.n_points,
        }


@dataclass(frozen=True)
class ChinchillaFit:
    """L(N, D) = E + A/N^α + B/D^β fitted by Huber loss on log L (Hoffmann et al. 2022)."""

    status: str  # "ok" | "not_enough_data" | "failed"
    E: float | None = None
    A: float | None = None
    B: float | None = None
    alpha: float | None = None
    beta: float | None = None
    r2: float | None = None
    n_points: int = 0
    reason: str | None = None

    def predict(self, n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray:
        """Predicted loss at N parameters and D tokens."""
        if self.status != "ok" or None in (self.E, self.A, self.B, self.alpha, self.beta):
            raise ValueError("predict: the fit has no parameters")
        n, d = np.asarray(n, float), np.asarray(d, float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta  # type: ignore[operator]

    def compute_optimal(self, compute: float) -> tuple[float, float]:
        """(N_opt, D_opt) minimising the fitted loss at C ≈ 6·N·D FLOPs (Hoffmann et al. 2022, eq. 4)."""
        if self.status != "ok":
            raise ValueError("compute_optimal: the fit has no parameters")
        a, b = self.alpha, self.beta  # type: ignore[assignment]
        g = (a * self.A / (b * self.B)) ** (1.0 / (a + b))  # type: ignore[operator]
        n_opt = g * (compute / 6.0) ** (b / (a + b))
        return float(n_opt), float(compute / (6.0 * n_opt))

    def to_json(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "law": "chinchilla",
            "status": self.status,
            "reason": self.reason,
            "E": self.E,
            "A": self.A,
            "B": self.B,
            "alpha": self.alpha,
            "beta": self.beta,
            "r2": self.r2,
            "n_points": self.n_points,
        }


def _r2(y: np.ndarray, yhat: np.ndarray) -> float | None:
    tss = float(np.sum((y - y.mean()) ** 2))
    return None if tss <= 0 else float(1.0 - np.sum((y - yhat) ** 2) / tss)


def fit_kaplan(n: np.ndarray, loss: np.ndarray) -> KaplanFit:
    """Fit L(N) = (N_c/N)^α by least squares on log L against log N."""
    n, loss = np.asarray(n, float), np.asarray(loss, float)
    keep = np.isfinite(n) & np.isfinite(loss) & (n > 0) & (loss > 0)
    n, loss = n[keep], loss[keep]
    if np.unique(n).size < 2:
        return KaplanFit("not_enough_data", n_points=int(n.size), reason="need two distinct N")
    x, y = np.log(n), np.log(loss)
    slope, intercept = np.polyfit(x, y, 1)
    alpha = -float(slope)
    if abs(alpha) < 1e-12:  # flat loss: N_c is undefined
        return KaplanFit("not_enough_data", n_points=int(n.size), reason="loss does not change with N")
    # log L = α log N_c − α log N  →  N_c = exp(intercept / α)
    log_nc = float(intercept) / alpha
    n_c = math.exp(log_nc) if log_nc < 700 else math.inf
    return KaplanFit(
        "ok", alpha, n_c if math.isfinite(n_c) else None, _r2(y, intercept + slope * x), int(n.size)
    )


def _huber(r: np.ndarray, delta: float) -> tuple[float, np.ndarray]:
    a = np.abs(r)
    quad = a <= delta
    loss = np.where(quad, 0.5 * r**2, delta * (a - 0.5 * delta))
    grad = np.where(quad, r, delta * np.sign(r))
    return float(loss.sum()), grad


def fit_chinchilla(n: np.ndarray, d: np.ndarray, loss: np.ndarray, delta: float = 1e-3) -> ChinchillaFit:
    """Fit L(N, D) = E + A/N^α + B/D^β by Huber loss on log L (Hoffmann et al. 2022, Approach 3)."""
    n, d, loss = np.asarray(n, float), np.asarray(d, float), np.asarray(loss, float)
    keep = np.isfinite(n) & np.isfinite(d) & np.isfinite(loss) & (n > 0) & (d > 0) & (loss > 0)
    n, d, loss = n[keep], d[keep], loss[keep]
    if np.unique(n).size < 2 or np.unique(d).size < 2 or n.size < 6:
        return ChinchillaFit(
            "not_enough_data",
            n_points=int(n.size),
            reason="need >= 2 distinct N, >= 2 distinct D, >= 6 points",
        )
    ln_n, ln_d, y = np.log(n), np.log(d), np.log(loss)

    def objective(p: np.ndarray) -> tuple[float, np.ndarray]:
        a, b, e, al, be = p
        terms = np.stack([a - al * ln_n, b - be * ln_d, np.full_like(ln_n, e)])  # (3, n)
        pred = logsumexp(terms, axis=0)
        w = np.exp(terms - pred)  # softmax weights: d pred / d term
        val, g = _huber(pred - y, delta)
        grad = np.array(
            [
                np.sum(g * w[0]),
                np.sum(g * w[1]),
                np.sum(g * w[2]),
                np.sum(g * w[0] * -ln_n),
                np.sum(g * w[1] * -ln_d),
            ]
        )
        return val, grad

    # Start: for fixed (α, β) the law is linear in (E, A, B) ≥ 0, so a grid over (α, β) with non-negative
    # least squares in each cell finds the basin (variable projection) far faster than the paper's 4⁵ grid of
    # L-BFGS starts; L-BFGS on the Huber objective then polishes all five parameters from the best few cells.
    grid = np.linspace(0.02, 1.5, 26)
    cells = []
    for al, be in itertools.product(grid, grid):
        design = np.stack([np.ones_like(n), n**-al, d**-be], axis=1)  # (n, 3): E, A, B
        scale = design.max(axis=0)
        coef, _ = optimize.nnls(design / scale, loss)
        coef = coef / scale
        pred = design @ coef
        if np.all(pred > 0) and np.all(coef > 0):
            cells.append((float(np.sum((np.log(pred) - y) ** 2)), al, be, coef))
    cells.sort(key=lambda c: c[0])
    bounds = [(-20.0, 60.0), (-20.0, 60.0), (-10.0, 10.0), (0.0, 3.0), (0.0, 3.0)]
    best = None
    for _, al, be, (e_, a_, b_) in cells[:5]:
        p0 = np.array([math.log(a_), math.log(b_), math.log(e_), al, be])
        p0 = np.clip(p0, [lo for lo, _ in bounds], [hi for _, hi in bounds])
        res = optimize.minimize(objective, p0, jac=True, method="L-BFGS-B", bounds=bounds)
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    if best is None:
        return ChinchillaFit("failed", n_points=int(n.size), reason="no start converged")
    a, b, e, al, be = (float(v) for v in best.x)
    fit = ChinchillaFit("ok", math.exp(e), math.exp(a), math.exp(b), al, be, None, int(n.size))
    r2 = _r2(y, np.log(fit.predict(n, d)))
    return ChinchillaFit("ok", fit.E, fit.A, fit.B, al, be, r2, int(n.size))


def passuntil_fit(
    x: Sequence[float], pass_rates: Sequence[float | None], min_points: int = 3, min_delta_aic: float = 4.0
) -> dict[str, Any]:
    """Hu et al. 2023: log(−log PU) = log c − α·log N is linear under a scaling law; concave = accelerated.

    `accelerated` needs ≥ 4 points: the quadratic in log N has negative curvature and beats the line by
    `min_delta_aic` (plain AIC, k = 3 and 4 with the noise variance).
    """
    out: dict[str, Any] = {
        "status": "undefined",
        "reason": None,
        "alpha": None,
        "log_c": None,
        "r2": None,
        "curvature": None,
        "accelerated": None,
        "x": [],
        "y": [],
    }
    pairs = [(xv, m) for xv, m in zip(x, pass_rates, strict=True) if m is not None and xv > 0]
    if any(not 0.0 < m < 1.0 for _, m in pairs):
        out["reason"] = "a pass rate at 0 or 1 has no log(−log PU)"
        return out
    if len(pairs) < min_points:
        out.update(status="not_enough_data", reason=f"{len(pairs)} points (need {min_points})")
        return out
    ln_n = np.log([p[0] for p in pairs])
    z = np.log(-np.log([p[1] for p in pairs]))
    slope, intercept = np.polyfit(ln_n, z, 1)
    rss1 = float(np.sum((z - (intercept + slope * ln_n)) ** 2))
    tss = float(np.sum((z - z.mean()) ** 2))
    out.update(
        status="ok",
        alpha=float(-slope),
        log_c=float(intercept),
        r2=_finite(1 - rss1 / tss) if tss > 0 else None,
        x=[float(p[0]) for p in pairs],
        y=[float(v) for v in z],
    )
    if len(pairs) >= 4:
        coef = np.polyfit(ln_n, z, 2)
        rss2 = float(np.sum((z - np.polyval(coef, ln_n)) ** 2))
        n = len(pairs)
        floor = 1e-12 * (tss + 1e-12)
        aic1 = n * math.log(max(rss1, floor) / n) + 2 * 3
        aic2 = n * math.log(max(rss2, floor) / n) + 2 * 4
        out["curvature"] = float(coef[0])
        out["accelerated"] = bool(coef[0] < 0 and aic1 - aic2 >= min_delta_aic)
    return out


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None
