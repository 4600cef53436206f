"""Phase changes in training curves: change points with `ruptures` and their alignment across curves.

An ability curve (task accuracy against training step) and a mechanism curve (say, the best induction-head
score) are each smoothed and segmented; `align` pairs every ability change point with the nearest mechanism
change point and reports the lag in steps. A mechanism that forms *before* the ability jumps (positive lag)
is the pattern Olsson et al. (2022) report for induction heads and in-context learning.

    ability    ▁▁▁▁▁▁▁▁▁▁▁▁▁▆██████
    mechanism  ▁▁▁▁▁▁▁▁▁▇██████████
                        ↑   ↑
                  mechanism  ability      lag = step(ability) − step(mechanism)

Checkpoints are usually log-spaced, so segmentation runs on the checkpoint index (uniform in log step) and
change points are reported as the step of the first checkpoint of the new segment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

Model = Literal["l2", "clinear", "rbf"]


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average with edge-reflection (window 1 returns y unchanged)."""
    y = np.asarray(y, dtype=np.float64)
    if window <= 1 or y.size < 3:
        return y.copy()
    w = min(window, y.size)
    pad_l, pad_r = w // 2, w - 1 - w // 2
    padded = np.pad(y, (pad_l, pad_r), mode="reflect" if y.size > max(pad_l, pad_r) else "edge")
    return np.convolve(padded, np.ones(w) / w, mode="valid")


def noise_sigma(y: np.ndarray) -> float:
    """Robust noise level: MAD of first differences / (0.6745·√2) (a step changes one difference only)."""
    d = np.diff(np.asarray(y, dtype=np.float64))
    if d.size == 0:
        return 0.0
    return float(np.median(np.abs(d - np.median(d))) / (0.6745 * math.sqrt(2)))


def change_points(
    steps: Sequence[float],
    values: Sequence[float],
    model: Model = "l2",
    method: Literal["pelt", "binseg"] = "pelt",
    penalty: float | None = None,
    smooth_window: int = 1,
    min_size: int = 2,
    penalty_scale: float = 6.0,
) -> list[dict[str, Any]]:
    """Change points of a curve: [{index, step, before, after, jump}] in order of step.

    The default penalty is BIC-like for a mean shift in Gaussian noise, `penalty_scale · σ² · ln n`, with σ²
    the robust noise variance of the raw curve. Plain BIC (scale 2) over-segments: on 40 points of flat
    Gaussian noise it reports a change in 7 of 40 curves, scale 6 in 1 of 40 while still finding a clean step
    in 19 of 20. Smoothing (`smooth_window` > 1) is for very noisy curves only: it turns a step into a ramp
    that a mean-shift model cuts twice. `before`/`after` are segment means of the (smoothed) curve and
    `jump` = after − before.
    """
    import ruptures as rpt

    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"steps and values differ in length: {x.size} vs {y.size}")
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    n = y.size
    if n < 2 * min_size + 1:
        return []
    ys = smooth(y, smooth_window)
    if penalty is None:
        # Smoothing divides the noise variance by w but correlates w neighbours, so a spurious split gains
        # about as much cost as on the raw curve: the penalty uses the raw noise variance.
        sigma2 = noise_sigma(y) ** 2
        # A flat floor keeps a noiseless curve from being cut at every rounding wobble.
        sigma2 = max(sigma2, 1e-6 * (float(np.var(ys)) + 1e-12))
        penalty = penalty_scale * sigma2 * math.log(n)
    signal = ys.reshape(-1, 1)  # (n, 1)
    if model == "clinear":
        signal = np.column_stack([ys, np.arange(n, dtype=np.float64)])  # ruptures: value, then time
    algo = (rpt.Pelt if method == "pelt" else rpt.Binseg)(model=model, min_size=min_size, jump=1)
    bkps = algo.fit(signal).predict(pen=penalty)[:-1]  # the last entry is n
    out = []
    edges = [0, *bkps, n]
    for j, b in enumerate(bkps):
        before = float(ys[edges[j] : b].mean())
        after = float(ys[b : edges[j + 2]].mean())
        out.append(
            {"index": int(b), "step": float(x[b]), "before": before, "after": after, "jump": after - before}
        )
    return out


def main_change_point(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The change point with the largest absolute jump (None if there is none)."""
    return max(points, key=lambda p: abs(p["jump"])) if points else None


def align(
    steps: Sequence[float],
    ability: Sequence[float],
    mechanism: Sequence[float],
    mechanism_steps: Sequence[float] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Change points of an ability and a mechanism curve; each ability point paired with the nearest other.

    lag = step(ability change) − step(mechanism change): positive when the mechanism changes first. The
    `main` entry pairs the largest-jump change point of each curve. Keyword arguments go to `change_points`.
    """
    a_pts = change_points(steps, ability, **kwargs)
    m_pts = change_points(mechanism_steps if mechanism_steps is not None else steps, mechanism, **kwargs)
    pairs = []
    for a in a_pts:
        if not m_pts:
            pairs.append({"ability_step": a["step"], "mechanism_step": None, "lag_steps": None})
            continue
        m = min(m_pts, key=lambda p: abs(p["step"] - a["step"]))
        pairs.append(
            {"ability_step": a["step"], "mechanism_step": m["step"], "lag_steps": a["step"] - m["step"]}
        )
    a_main, m_main = main_change_point(a_pts), main_change_point(m_pts)
    main = None
    if a_main is not None and m_main is not None:
        main = {
            "ability_step": a_main["step"],
            "mechanism_step": m_main["step"],
            "lag_steps": a_main["step"] - m_main["step"],
        }
    return {"ability_change_points": a_pts, "mechanism_change_points": m_pts, "pairs": pairs, "main": main}
