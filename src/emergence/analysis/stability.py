"""How much a verdict can be trusted: its stability under resampling, and the design's power to see a jump.

Stability. The verdict rule (`verdict.py`) is applied to `stability_resamples` resampled data sets: within
each member the seeds are drawn with replacement, and within each drawn seed the items are drawn again
(an all-or-nothing metric measured on n items is redrawn as Binomial(n, p̃)/n with p̃ = (n·y + ½)/(n + 1), so
that 0/200 can come out as 1/200; a continuous metric gets Gaussian noise of its row's item-bootstrap
`stderr`). Each resample is refitted (line, hinge and sigmoid on the grids of `fits.batch_fit`, the same
information criterion) and its breakthroughness recomputed. The share of resamples that give each label is
the verdict's stability; the label that wins at least `stability_bar` of them is the verdict, and none doing
so makes it "borderline".

Design power. For the study's own sizes, seeds per size and items per evaluation, simulated sigmoids in
log10 of the axis, rising from 10 % to 90 % within `power_rise_decades` with their midpoint anywhere in the
middle half of the sampled span, are measured with binomial item noise (and a small seed-to-seed spread of
the midpoint) and judged by the same rule. The share called emergent is the design's power; below
`min_power` the design cannot see a jump, and a verdict other than "emergent" says so instead of "smooth".
"""

from __future__ import annotations

import copy
import math
import zlib
from typing import Any

import numpy as np

from emergence.analysis import bigbench, fits
from emergence.analysis.settings import AnalysisConfig
from emergence.analysis.verdict import MARGINS, RuleInputs, criteria_of, margins_held, rule_label


def _criterion_values(rss: np.ndarray, n: float, k: int, which: str) -> np.ndarray:
    """AIC / AICc / BIC of B fits with the same n and k (inf where undefined), as fits.ModelFit does."""
    aic = n * np.log(rss / n) + 2 * k
    if which == "aic":
        return aic
    if which == "bic":
        return n * np.log(rss / n) + k * math.log(n)
    if n - k - 1 <= 0:
        return np.full_like(rss, np.inf)
    return aic + 2 * k * (k + 1) / (n - k - 1)


def fit_advantages(
    u: np.ndarray, ys: np.ndarray, ws: np.ndarray, criterion: str, max_k: float, y_ref: np.ndarray
) -> np.ndarray:
    """criterion(line) − best of sigmoid/hinge for B weighted data sets at once: (B,), nan where no fit.

    `u` is (n,) log10 x, `ys` and `ws` (B, n) values and weights (draw counts); `y_ref` sets the sigmoid's
    plateau bounds as in the fit of the data.
    """
    n_x = np.unique(u).size
    n_obs = float(ws[0].sum())
    if n_x < 3 or n_obs < 4:
        return np.full(ys.shape[0], np.nan)
    tss = (ws * (ys - (ws * ys).sum(1, keepdims=True) / ws.sum(1, keepdims=True)) ** 2).sum(1)
    crit: dict[str, np.ndarray] = {}
    for model in fits.MODEL_NAMES:
        if n_x < fits.MIN_DISTINCT_X[model]:
            continue
        bounds = fits.plateau_bounds(y_ref) if model == "sigmoid" else None
        params, ok = fits.batch_fit(model, u, ys, ws, max_k, bounds)
        yhat = fits.batch_predict(model, params, u)
        rss = (ws * (ys - yhat) ** 2).sum(1)
        rss = np.maximum(rss, 1e-12 * (tss + 1e-12))  # as fits._score: a perfect fit is not −inf
        c = _criterion_values(rss, n_obs, fits.N_PARAMS[model] + 1, criterion)
        crit[model] = np.where(ok & np.isfinite(c), c, np.inf)
    others = [crit[m] for m in ("sigmoid", "hinge") if m in crit]
    if "line" not in crit or not others:
        return np.full(ys.shape[0], np.nan)
    with np.errstate(invalid="ignore"):  # inf − inf where no model fitted a resample
        adv = crit["line"] - np.minimum.reduce(others)
    flat = (ys.max(1) - ys.min(1)) <= 1e-12  # a constant resample has no shape (fits' "constant")
    return np.where(np.isfinite(adv) & ~flat, adv, np.nan)


def rule_on_batch(
    u: np.ndarray,
    member: np.ndarray,
    ys: np.ndarray,
    ws: np.ndarray,
    low: float,
    high: float,
    criterion: str,
    cfg: AnalysisConfig,
) -> tuple[list[str], np.ndarray]:
    """The verdict rule on B data sets: (labels, margins held (B, 5) in `verdict.MARGINS` order).

    `member` (n,) indexes the scale points in increasing x; means over the drawn seeds give the scores.
    """
    n_members = int(member.max()) + 1
    onehot = np.eye(n_members)[member]  # (n, J)
    means = ((ws * ys) @ onehot) / (ws @ onehot)  # (B, J)
    scores = np.asarray(bigbench.normalised_score(means, low, high))
    adv = fit_advantages(u, ys, ws, criterion, cfg.max_k, ys[0])
    labels, held = [], np.zeros((ys.shape[0], len(MARGINS)), bool)
    for b in range(ys.shape[0]):
        s = scores[b]
        brk = bigbench.smoothness(s, max_b=cfg.max_breakthroughness).breakthroughness
        r = RuleInputs(float(s[0]), float(s[-1]), s.size, None if np.isnan(adv[b]) else float(adv[b]), brk)
        held[b] = margins_held(r, cfg)
        labels.append(rule_label(criteria_of(r, cfg), r.s1, r.sn, cfg))
    return labels, held


def _item_noise(
    y: np.ndarray, se: np.ndarray, n_items: np.ndarray, binomial: bool, rng: np.random.Generator, size: int
) -> np.ndarray:
    """(size, n) redrawn observations: binomial for all-or-nothing metrics on n items, else Gaussian(se)."""
    out = np.broadcast_to(y, (size, y.size)).copy()
    n_ok = np.isfinite(n_items) & (n_items >= 1)
    use_binom = binomial & n_ok & (y >= 0) & (y <= 1)
    if use_binom.any():
        n = n_items[use_binom].astype(int)
        p = (y[use_binom] * n + 0.5) / (n + 1)
        out[:, use_binom] = rng.binomial(n, p, size=(size, n.size)) / n
    gauss = ~use_binom & np.isfinite(se) & (se > 0)
    if gauss.any():
        out[:, gauss] += rng.standard_normal((size, int(gauss.sum()))) * se[gauss]
    return out


def seed_weights(member: np.ndarray, run_ids: list[str], size: int, seed: int) -> np.ndarray:
    """(size, n) draw counts: each member's runs drawn with replacement.

    The draws depend only on the members and their run ids, so every metric of a task gets the same seed
    resamples and the task's verdict can be recomputed on each of them.
    """
    rng = np.random.default_rng(seed)
    w = np.zeros((size, member.size))
    for j in range(int(member.max()) + 1):
        idx = np.flatnonzero(member == j)
        idx = idx[np.argsort([run_ids[i] for i in idx], kind="stable")]
        draws = rng.integers(0, idx.size, size=(size, idx.size))
        for col, obs in enumerate(idx):
            w[:, obs] = (draws == col).sum(axis=1)
    return w


def stability(
    points: dict[str, list[Any]],
    se: np.ndarray,
    n_items: np.ndarray,
    binomial: bool,
    low: float | None,
    high: float | None,
    criterion: str,
    cfg: AnalysisConfig,
    noise_key: str,
) -> tuple[dict[str, Any] | None, list[str]]:
    """Stability block and the per-resample labels, from a scale curve's per-seed points.

    `se` and `n_items` are per point (nan where unknown); `noise_key` (e.g. the metric) seeds the item
    noise so that metrics do not share it. None when the rule cannot run (too few points, no bounds).
    """
    size = cfg.stability_resamples
    x = np.asarray(points["x"], float)
    y = np.array([np.nan if v is None else v for v in points["y"]], float)
    keep = np.isfinite(x) & (x > 0) & np.isfinite(y)
    if size <= 0 or low is None or high is None or low == high or np.unique(x[keep]).size < cfg.min_points:
        return None, []
    x, y, se, n_items = x[keep], y[keep], se[keep], n_items[keep]
    run_ids = [r for r, k in zip(points["run_id"], keep, strict=True) if k]
    member = np.searchsorted(np.unique(x), x)
    ws = seed_weights(member, run_ids, size, cfg.seed)
    rng = np.random.default_rng([cfg.seed, zlib.crc32(noise_key.encode())])
    ys = _item_noise(y, se, n_items, binomial, rng, size)
    labels, held = rule_on_batch(np.log10(x), member, ys, ws, low, high, criterion, cfg)
    return summarise(labels, held, cfg), labels


def summarise(labels: list[str], held: np.ndarray | None, cfg: AnalysisConfig) -> dict[str, Any]:
    """{"n", "p": {label: share}, "top", "p_top", "bar"}, and with `held` the share of resamples in which
    each margin holds ("margins") and the one that most separates the two commonest labels ("deciding")."""
    arr = np.array(labels)
    values, counts = np.unique(arr, return_counts=True)
    p = {str(v): float(c) / len(labels) for v, c in zip(values, counts, strict=True)}
    ranked = sorted(p, key=lambda k: (-p[k], k != "emergent"))
    top = ranked[0]
    out: dict[str, Any] = {"n": len(labels), "p": p, "top": top, "p_top": p[top], "bar": cfg.stability_bar}
    if held is not None:
        out["margins"] = {c: float(held[:, i].mean()) for i, c in enumerate(MARGINS)}
        out["deciding"] = None
        if len(ranked) > 1:
            a, b = held[arr == ranked[0]].mean(axis=0), held[arr == ranked[1]].mean(axis=0)
            out["deciding"] = MARGINS[int(np.argmax(np.abs(a - b)))]
    return out


def deciding_margin(margins: list[dict[str, Any]], stab: dict[str, Any]) -> str | None:
    """The margin text ("ΔAICc 3.8 against ≥ 4") of the criterion that separates the two commonest labels."""
    key = stab.get("deciding")
    return next((m["text"] for m in margins if m["criterion"] == key), None)


# ------------------------------------------------------------------------------------------- design power


def design_block(x: list[float], n_seeds: int, n_items: int, cfg: AnalysisConfig) -> dict[str, Any]:
    """Whether a design (sizes on the axis, seeds per size, items per evaluation) can see a jump."""
    u = tuple(sorted({round(math.log10(v), 9) for v in x if v > 0 and math.isfinite(v)}))
    key = (u, max(1, n_seeds), max(1, n_items), cfg.seed, cfg.power_sims, *_rule_cfg_key(cfg))
    if key not in _DESIGNS:  # every metric of a task shares its design: simulate once
        if len(_DESIGNS) > 256:
            _DESIGNS.clear()
        _DESIGNS[key] = _design(u, max(1, n_seeds), max(1, n_items), cfg)
    return copy.deepcopy(_DESIGNS[key])


_DESIGNS: dict[tuple[Any, ...], dict[str, Any]] = {}


def _rule_cfg_key(cfg: AnalysisConfig) -> tuple[Any, ...]:
    return (
        cfg.small_max_score,
        cfg.large_min_score,
        cfg.min_delta_aic,
        cfg.min_breakthroughness_ratio,
        cfg.power_rise_decades,
        cfg.power_seed_jitter_decades,
        cfg.min_power,
        cfg.criterion,
        cfg.max_k,
    )


def _design(u: tuple[float, ...], n_seeds: int, n_items: int, cfg: AnalysisConfig) -> dict[str, Any]:
    reasons: list[str] = []
    n_sizes = len(u)
    span = (u[-1] - u[0]) if n_sizes else 0.0
    need = fits.MIN_DISTINCT_X["sigmoid"]
    if n_sizes < need:
        reasons.append(f"{n_sizes} sizes: a sigmoid threshold needs at least {need}, so no jump can be seen")
    power = None
    if n_sizes >= need and cfg.power_sims > 0 and span > 0:
        power = simulate_power(np.array(u), n_seeds, n_items, cfg.seed, cfg.power_sims, cfg)
        if power["p_emergent"] < cfg.min_power:
            reasons.append(
                f"a jump rising within {cfg.power_rise_decades:g} decade is called emergent in only "
                f"{100 * power['p_emergent']:.0f} % of simulations ({n_sizes} sizes over {span:.2f} decades, "
                f"{n_seeds} seed{'s' if n_seeds != 1 else ''}, {n_items} items; the bar is "
                f"{100 * cfg.min_power:.0f} %)"
            )
    status = "underpowered" if reasons else "ok"
    return {"status": status, "reasons": reasons, "power": power, "sizes": n_sizes, "span_decades": span}


def simulate_power(
    u: np.ndarray, n_seeds: int, n_items: int, seed: int, sims: int, cfg: AnalysisConfig
) -> dict[str, Any]:
    """Share of simulated sigmoids (see the module docstring) that the rule calls emergent."""
    rng = np.random.default_rng([seed, 7919])
    span = float(u[-1] - u[0])
    k = 2 * math.log(9) / cfg.power_rise_decades  # 10 % → 90 % within power_rise_decades
    u_obs = np.repeat(u, n_seeds)  # (n,)
    member = np.repeat(np.arange(u.size), n_seeds)
    mid = rng.uniform(u[0] + span / 4, u[-1] - span / 4, size=(sims, 1))
    jitter = rng.normal(0.0, cfg.power_seed_jitter_decades, size=(sims, u_obs.size))
    p = 1.0 / (1.0 + np.exp(-k * (u_obs[None, :] - mid - jitter)))
    ys = rng.binomial(n_items, p) / n_items
    ws = np.ones_like(ys)
    crit = fits.resolve_criterion(cfg.criterion, u_obs.size)
    labels, _ = rule_on_batch(u_obs, member, ys, ws, 0.0, 1.0, crit, cfg)
    return {
        "p_emergent": float(np.mean([lab == "emergent" for lab in labels])),
        "rise_decades": cfg.power_rise_decades,
        "sharpness": k,
        "n_sim": sims,
        "sizes": int(u.size),
        "seeds": n_seeds,
        "items": n_items,
    }
