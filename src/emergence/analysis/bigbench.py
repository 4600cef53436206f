"""BIG-bench scores across scale: normalised score, total improvement, linearity and breakthroughness.

Srivastava et al. 2022 (BIG-bench), §3.4 and Appendix B; REFERENCES §1. With models sorted by scale and y_i
the normalised score of model i:

    I(y) = sign(argmax_i y_i − argmin_i y_i) · (max y − min y)        total improvement
    L    = I(y) / sqrt(mean_i   (y_{i+1} − y_i)²)                      linearity (root-mean-square)
    B    = I(y) / sqrt(median_i (y_{i+1} − y_i)²)                      breakthroughness (root-median-square)

Sanity values: n models with equal steps give L = B = n − 1; a single jump gives L = sqrt(n − 1) and B = ∞
(the median squared step is 0), which we clip at ±`max_b` and flag. Schaeffer et al. 2023 call B the
"emergence score".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_MAX_BREAKTHROUGHNESS = 1000.0


def normalised_score(raw: np.ndarray | float, low: float, high: float) -> np.ndarray:
    """100·(raw − low)/(high − low): 0 at chance (low), 100 at the best value (high).

    For a lower-is-better metric pass low = the worst value and high = the best (smaller) one: the formula
    then equals flipping the sign of raw, low and high first, so the score is always higher-is-better.
    """
    raw = np.asarray(raw, dtype=float)
    if not (math.isfinite(low) and math.isfinite(high)) or high == low:
        return np.full_like(raw, np.nan)
    return 100.0 * (raw - low) / (high - low)


def total_improvement(y: Sequence[float] | np.ndarray) -> float:
    """I(y) = sign(argmax − argmin)·(max − min) over scale-sorted y."""
    y = np.asarray(y, dtype=float)
    if y.size == 0:
        return 0.0
    i_max, i_min = int(np.argmax(y)), int(np.argmin(y))
    return float(np.sign(i_max - i_min) * (y.max() - y.min()))


@dataclass(frozen=True)
class Smoothness:
    """Total improvement, linearity and breakthroughness of one scale-sorted curve."""

    improvement: float
    linearity: float | None
    breakthroughness: float | None
    clipped: bool


def smoothness(y: Sequence[float] | np.ndarray, max_b: float = DEFAULT_MAX_BREAKTHROUGHNESS) -> Smoothness:
    """I, L and B of scale-sorted scores; B (and L) clipped at ±max_b when the denominator vanishes."""
    y = np.asarray(y, dtype=float)
    if y.size < 2 or not np.isfinite(y).all():
        return Smoothness(total_improvement(y[np.isfinite(y)]) if y.size else 0.0, None, None, False)
    i = total_improvement(y)
    if i == 0.0:
        # A flat curve: no improvement at all, nothing to be linear or abrupt about.
        return Smoothness(0.0, 0.0, 0.0, False)
    # L and B are ratios, unchanged by scaling y; scaling by max |y| keeps the squares finite for any input.
    scale = float(np.abs(y).max())
    d2 = (np.diff(y) / scale) ** 2
    i_s = i / scale
    rms, rmeds = math.sqrt(float(d2.mean())), math.sqrt(float(np.median(d2)))
    lin = i_s / rms  # rms > 0 whenever I ≠ 0
    clipped = False
    # Relative tolerance: floating-point steps of a "flat" stretch are never exactly 0.
    if rmeds <= 1e-12 * abs(i_s) or abs(i_s / rmeds) > max_b:
        b, clipped = math.copysign(max_b, i), True
    else:
        b = i_s / rmeds
    return Smoothness(i, lin, b, clipped)


def linearity(y: Sequence[float] | np.ndarray) -> float | None:
    """L = I(y) / RMS of successive differences (None for fewer than 2 points)."""
    return smoothness(y).linearity


def breakthroughness(
    y: Sequence[float] | np.ndarray, max_b: float = DEFAULT_MAX_BREAKTHROUGHNESS
) -> tuple[float | None, bool]:
    """B = I(y) / root-median-square of successive differences, and whether it was clipped at ±max_b."""
    s = smoothness(y, max_b=max_b)
    return s.breakthroughness, s.clipped


def score_block(
    x: Sequence[float],
    means: Sequence[float | None],
    low: float | None,
    high: float | None,
    flipped: bool,
    max_b: float = DEFAULT_MAX_BREAKTHROUGHNESS,
) -> dict[str, Any]:
    """The analysis.json "BigBench" block: normalised scores of scale-sorted means, and I, L, B."""
    out: dict[str, Any] = {
        "status": "ok",
        "x": list(x),
        "scores": [None] * len(x),
        "low": low,
        "high": high,
        "flipped": flipped,
        "improvement": None,
        "linearity": None,
        "breakthroughness": None,
        "clipped": False,
    }
    if low is None or high is None or low == high:
        out["status"] = "degenerate"
        return out
    scores = normalised_score(np.array([np.nan if m is None else m for m in means], float), low, high)
    out["scores"] = [float(v) if math.isfinite(v) else None for v in scores]
    finite = scores[np.isfinite(scores)]
    if finite.size < 2:
        out["status"] = "not_enough_data"
        return out
    sm = smoothness(finite, max_b=max_b)
    out.update(
        improvement=sm.improvement,
        linearity=sm.linearity,
        breakthroughness=sm.breakthroughness,
        clipped=sm.clipped,
    )
    return out
