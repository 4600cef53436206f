"""The verdict rule of docs/emergence-analysis.md: four criteria, their margins, and the label they give.

The rule is written once, as plain functions of the numbers it reads (normalised scores of the smallest and
largest member, the fit's information-criterion advantage over the line, breakthroughness), so that the
verdict on the data (`classify`), on each resample (`stability.py`) and on simulated curves of the design
power estimate apply exactly the same cut-offs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from emergence.analysis.settings import AnalysisConfig

CRITERIA = ("near_chance_small", "well_above_large", "nonlinear_fit", "breakthrough")
# What else the labels turn on: "smooth" needs the score to rise by `min_improvement`.
MARGINS = (*CRITERIA, "improvement")
CRITERION_NAMES = {
    "near_chance_small": "smallest model near chance",
    "well_above_large": "largest model well above chance",
    "nonlinear_fit": "sigmoid or hinge beats the line",
    "breakthrough": "breakthroughness",
    "improvement": "rise from smallest to largest (for smooth)",
}
LABELS = ("emergent", "smooth", "absent", "inconclusive")


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


@dataclass(frozen=True)
class RuleInputs:
    """What the rule reads from one curve: scores of the end members, the fit's margin, B and n."""

    s1: float  # normalised score of the smallest member
    sn: float  # ... of the largest
    n: int  # scale points with a score
    advantage: float | None  # criterion(line) − best criterion of sigmoid/hinge; None: no shape fit
    breakthroughness: float | None


def margins_held(r: RuleInputs, cfg: AnalysisConfig) -> list[bool]:
    """Whether each of `MARGINS` holds: the four criteria, then the rise that "smooth" needs."""
    crit = criteria_of(r, cfg)
    return [*(crit[c] for c in CRITERIA), r.sn - r.s1 >= cfg.min_improvement]


def criteria_of(r: RuleInputs, cfg: AnalysisConfig) -> dict[str, bool]:
    """The four criteria of the rule."""
    return {
        "near_chance_small": r.s1 <= cfg.small_max_score,
        "well_above_large": r.sn >= cfg.large_min_score,
        # advantage ≥ cut > 0 means a non-linear model is best and beats the line by the cut.
        "nonlinear_fit": r.advantage is not None and r.advantage >= cfg.min_delta_aic and r.advantage > 0,
        "breakthrough": r.breakthroughness is not None
        and r.breakthroughness >= cfg.min_breakthroughness_ratio * (r.n - 1),
    }


def rule_label(crit: dict[str, bool], s1: float, sn: float, cfg: AnalysisConfig) -> str:
    """Emergent / absent / inconclusive / smooth, applied in the documented order."""
    if all(crit.values()):
        return "emergent"
    if sn < cfg.absent_max_score:
        return "absent"
    if crit["nonlinear_fit"] and crit["breakthrough"]:
        # A sharp rise that does not go from near chance to well above it: a jump, but not Wei et al.'s
        # "absent in small models, present in large ones".
        return "inconclusive"
    if sn - s1 >= cfg.min_improvement:
        return "smooth"
    return "inconclusive"


CRITERION_LABELS = {"aic": "AIC", "aicc": "AICc", "bic": "BIC"}


def margins(r: RuleInputs, cfg: AnalysisConfig, criterion: str) -> list[dict[str, Any]]:
    """Each criterion's value against its cut (e.g. "ΔAICc 3.8 against 4"), for the table and borderlines."""
    delta_name = "Δ" + CRITERION_LABELS.get(criterion, criterion.upper())
    rows = [
        ("near_chance_small", "smallest score", r.s1, cfg.small_max_score, "<="),
        ("well_above_large", "largest score", r.sn, cfg.large_min_score, ">="),
        ("nonlinear_fit", delta_name, r.advantage, cfg.min_delta_aic, ">="),
        ("breakthrough", "B", r.breakthroughness, cfg.min_breakthroughness_ratio * (r.n - 1), ">="),
        ("improvement", "rise", r.sn - r.s1, cfg.min_improvement, ">="),
    ]
    out = []
    for key, what, value, cut, op in rows:
        holds = None if value is None else bool(value <= cut if op == "<=" else value >= cut)
        shown = "n/a" if value is None else f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
        out.append(
            {
                "criterion": key,
                "name": CRITERION_NAMES[key],
                "value": value,
                "cut": float(cut),
                "op": op,
                "holds": holds,
                "text": f"{what} {shown} against {'≤' if op == '<=' else '≥'} {cut:.3g}",
            }
        )
    return out


def fit_advantage(fit: dict[str, Any]) -> float | None:
    """criterion(line) − the better of sigmoid and hinge; None when there is no usable shape fit."""
    if fit.get("status") != "ok":
        return None
    crit = fit.get("criterion", "aic")
    models = fit.get("models") or {}
    line = (models.get("line") or {}).get(crit)
    others = [(models.get(m) or {}).get(crit) for m in ("sigmoid", "hinge")]
    others = [c for c in others if c is not None]
    if line is None or not others:
        return None
    return float(line - min(others))


def classify(bb: dict[str, Any], fit: dict[str, Any], axis: str, cfg: AnalysisConfig) -> dict[str, Any]:
    """Verdict block for one curve: emergent / smooth / absent / inconclusive, with reasons and margins."""
    crit: dict[str, bool | None] = dict.fromkeys(CRITERIA)
    out: dict[str, Any] = {
        "verdict": "inconclusive",
        "axis": axis,
        "criteria": crit,
        "reasons": [],
        "threshold": None,
        "margins": [],
    }
    scores = [s for s in bb["scores"] if s is not None]
    n = len(scores)
    if bb["status"] == "degenerate":
        out["reasons"].append("the normalised score is undefined (chance level equals the best value)")
        return out
    if n < cfg.min_points:
        out["reasons"].append(f"{n} scale points with a score (need {cfg.min_points})")
        return out
    s1, sn = scores[0], scores[-1]
    c_name = fit.get("criterion", "aic").upper()
    inputs = RuleInputs(s1, sn, n, fit_advantage(fit), bb.get("breakthroughness"))
    crit.update(criteria_of(inputs, cfg))
    out["margins"] = margins(inputs, cfg, fit.get("criterion", "aic"))
    reasons = out["reasons"]
    reasons.append(
        f"smallest model {'near' if crit['near_chance_small'] else 'not near'} chance "
        f"(score {s1:.1f} {'<=' if crit['near_chance_small'] else '>'} {cfg.small_max_score:g})"
    )
    reasons.append(
        f"largest model {'well above' if crit['well_above_large'] else 'not well above'} chance "
        f"(score {sn:.1f} {'>=' if crit['well_above_large'] else '<'} {cfg.large_min_score:g})"
    )
    delta, best = fit.get("delta_vs_line"), fit.get("best")
    if fit.get("status") == "ok" and best is not None and delta is not None:
        if best == "line":
            reasons.append(f"a straight line in log-scale fits best ({c_name})")
        else:
            ok = crit["nonlinear_fit"]
            reasons.append(
                f"{best} beats the line by Δ{c_name} = {delta:.1f} "
                f"({'>=' if ok else '<'} {cfg.min_delta_aic:g})"
            )
    else:
        reasons.append(f"no shape fit ({fit.get('status')}: {fit.get('reason')})")
    b = bb.get("breakthroughness")
    if b is not None:
        need = cfg.min_breakthroughness_ratio * (n - 1)
        clip = " (clipped: a single jump)" if bb.get("clipped") else ""
        reasons.append(
            f"breakthroughness B = {b:.3g}{clip} {'>=' if crit['breakthrough'] else '<'} "
            f"{cfg.min_breakthroughness_ratio:g}·(n−1) = {need:.3g}"
        )
    out["threshold"] = fit.get("threshold")
    out["verdict"] = rule_label(crit, s1, sn, cfg)  # type: ignore[arg-type]
    if out["verdict"] == "absent":
        reasons.append(f"largest model's score {sn:.1f} < {cfg.absent_max_score:g}: not present at any scale")
    elif out["verdict"] == "inconclusive" and crit["nonlinear_fit"] and crit["breakthrough"]:
        reasons.append("a sharp rise, but not from near chance to well above it")
    elif out["verdict"] == "smooth":
        reasons.append(f"score rises by {sn - s1:.1f} points without a jump")
    elif out["verdict"] == "inconclusive":
        reasons.append("neither a jump from near chance nor a steady rise")
    return out
