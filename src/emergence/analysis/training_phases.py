"""Phase changes within each run: training loss, ICL score and induction score over checkpoints, aligned.

Olsson et al. (2022, REFERENCES §7) find that induction heads form in a phase change, visible as a bump in the
training loss, during which the in-context-learning score drops; models with one layer have neither. For each
run measured at every checkpoint (`mechanisms.steps: all`) this module puts three curves on the same steps,

    loss           mean training loss logged since the previous checkpoint (metrics.jsonl)
    icl_score      loss at a late token − loss at an early token (summary field of the measurement)
    max_induction  best head's induction score on repeated random tokens

finds each curve's change points (`phases.change_points`: ruptures on the checkpoint index), picks the main
one, the largest jump in the curve's expected direction (loss and ICL score fall, the induction score
rises), and reports the lag of the loss and ICL changes behind the induction score's rise:

    lag = step(loss or ICL change) − step(induction rise)   (0: same checkpoint; positive: induction first)

The checkpoint spacing bounds the resolution: with `checkpoint_every: 50` a lag is known to ±50 steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emergence.analysis import phases
from emergence.io import read_jsonl

# Curve → direction of its phase change (+1 rises, −1 falls) and where it comes from.
CURVES: dict[str, int] = {"loss": -1, "icl_score": -1, "max_induction": +1}
REFERENCE = "max_induction"  # the mechanism the other curves are aligned to
MIN_POINTS = 6  # fewer checkpoints cannot place a change point


def loss_at_steps(records: Sequence[dict[str, Any]], steps: Sequence[int]) -> list[float | None]:
    """Mean logged training loss over (previous checkpoint, checkpoint] for each checkpoint step.

    Step 0 (no update yet) takes the first logged loss, which the trainer computes before its first update.
    """
    logged = [(int(r["step"]), float(r["loss"])) for r in records if isinstance(r.get("loss"), int | float)]
    if not logged:
        return [None] * len(steps)
    s = np.array([x for x, _ in logged])
    v = np.array([y for _, y in logged])
    out: list[float | None] = []
    prev = -1
    for step in steps:
        sel = (s > prev) & (s <= max(step, int(s.min())))
        out.append(float(v[sel].mean()) if sel.any() else None)
        prev = max(step, prev)
    return out


def main_change(points: list[dict[str, Any]], direction: int) -> dict[str, Any] | None:
    """The change point with the largest jump in `direction` (+1 up, −1 down); None if none goes that way."""
    going = [p for p in points if direction * p["jump"] > 0]
    return max(going, key=lambda p: direction * p["jump"]) if going else None


# Per-head scores kept for the final checkpoint (analysis.attention.head_scores).
HEAD_SCORES = ("previous_token", "induction", "duplicate_token", "bos")


def run_phases(steps: Sequence[int], curves: dict[str, Sequence[float | None]]) -> dict[str, Any]:
    """Change points of each curve, the main change in its direction, and lags behind the reference curve."""
    out: dict[str, Any] = {"change_points": {}, "main": {}, "lags": {}}
    for name, values in curves.items():
        pts = [(s, v) for s, v in zip(steps, values, strict=True) if isinstance(v, int | float)]
        pts = [(s, v) for s, v in pts if np.isfinite(v)]
        cps = phases.change_points(*zip(*pts, strict=True)) if len(pts) >= MIN_POINTS else []
        for c in cps:
            c["step"] = int(c["step"])
        out["change_points"][name] = cps
        out["main"][name] = main_change(cps, CURVES.get(name, -1))
    ref = out["main"].get(REFERENCE)
    for name in curves:
        if name == REFERENCE:
            continue
        m = out["main"].get(name)
        out["lags"][name] = m["step"] - ref["step"] if m is not None and ref is not None else None
    return out


def study_training_phases(study_dir: Path, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per measured run: curves over checkpoints, change points, main changes, lags and final numbers.

    `runs` are `measure_study`'s runs (points with summaries, the final full measurement); runs with fewer
    than `MIN_POINTS` measured checkpoints (e.g. `mechanisms.steps: final`) are left out.
    """
    out: list[dict[str, Any]] = []
    for run in runs:
        points = run.get("points") or []
        if len(points) < MIN_POINTS:
            continue
        steps = [int(p["step"]) for p in points]
        records = read_jsonl(study_dir / "runs" / run["run_id"] / "metrics.jsonl")
        curves: dict[str, list[float | None]] = {"loss": loss_at_steps(records, steps)}
        for name in ("icl_score", "max_induction"):
            curves[name] = [p["summary"].get(name) for p in points]
        if not any(isinstance(v, int | float) for v in curves[REFERENCE]):
            continue  # no head measurements: nothing to align to
        final = run.get("final") or {}
        heads = final.get("heads") or {}
        out.append(
            {
                "run_id": run["run_id"],
                "member": run["member"],
                "seed": run["seed"],
                "n_layer": (final.get("model") or {}).get("n_layer"),
                "steps": steps,
                "curves": curves,
                **run_phases(steps, curves),
                "final": {
                    "step": steps[-1],
                    "loss": curves["loss"][-1],
                    "icl_score": curves["icl_score"][-1],
                    "max_induction": curves["max_induction"][-1],
                    "max_induction_head": heads.get("max_induction_head"),
                    "max_previous_token": (final.get("summary") or {}).get("max_previous_token"),
                    "n_induction_heads": heads.get("n_induction_heads"),
                },
                "head_scores": {k: heads[k] for k in HEAD_SCORES if k in heads},
            }
        )
    return out
