"""What each task section shows, assembled from analysis.json when present and from the raw rows otherwise.

analysis.json (docs/emergence-analysis.md, schema_version 1) carries curves with bootstrap CIs, fits,
thresholds and verdicts; the report draws exactly those numbers so that the page and `emergence analyze`
never disagree. Without it, the report still draws the scaling curves from results.parquet (mean over
seeds, Student-t CI) and says that fits and verdicts are missing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from emergence.report.data import StudyData, final_rows
from emergence.report.plots import FitOverlay, ScalingPanel, metric_kind, seed_ci

SCALE_AXES = ("n_params", "flops")
AXIS_WORDS = {"n_params": "parameters", "flops": "training FLOPs"}  # how the page names each scale axis
DEFAULT_SPLIT_BY = ("family", "arch", "adaptation", "budget_multiplier")
# Rows with an answer length are per-length breakdowns (docs/emergence-analysis.md): not part of the curves.
LENGTH_COLUMN = "answer_len"


@dataclass(frozen=True)
class TaskKey:
    """A task section: task × shots × group (split_by columns, e.g. family), as analysis.json keys them."""

    task: str
    shots: int
    group: tuple[tuple[str, str], ...] = ()

    def label(self, show_shots: bool) -> str:
        """ "addition", or "addition · 3-shot · family=gpt" when needed to tell sections apart."""
        parts = [self.task]
        if show_shots:
            parts.append(f"{self.shots}-shot")
        parts += [f"{k}={v}" for k, v in self.group]
        return " · ".join(parts)

    @property
    def slug(self) -> str:
        """File- and anchor-safe name."""
        raw = "-".join([self.task, f"{self.shots}shot", *(f"{k}-{v}" for k, v in self.group)])
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip("-").lower()


@dataclass
class TaskView:
    """Everything one task section shows."""

    key: TaskKey
    label: str
    rows: pd.DataFrame  # whole-test-set rows of this task (every step)
    metrics: list[str]  # discontinuous first, then continuous
    kinds: dict[str, str]
    higher_is_better: dict[str, bool]
    panels: dict[str, list[ScalingPanel]]  # scale axis → one panel per metric
    ci_labels: dict[str, str]  # scale axis → what the grey band is
    entries: list[dict[str, Any]] = field(default_factory=list)  # analysis.json entries of this task
    verdict: dict[str, Any] | None = None  # analysis.json TaskVerdict
    mirage: dict[str, Any] | None = None
    length_predictions: list[dict[str, Any]] = field(default_factory=list)  # analysis.json p^L checks


def _group_columns(study: StudyData) -> list[str]:
    cfg = (study.analysis or {}).get("config") or {}
    split_by = cfg.get("split_by", DEFAULT_SPLIT_BY)
    return [c for c in split_by if c in study.results.columns]


def curve_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Whole-test-set rows (drops per-answer-length breakdowns)."""
    if LENGTH_COLUMN in results:
        return results[results[LENGTH_COLUMN].isna()]
    return results


def _key_of(entry: dict[str, Any]) -> TaskKey:
    group = tuple(sorted((str(k), str(v)) for k, v in (entry.get("group") or {}).items()))
    return TaskKey(str(entry["task"]), int(entry.get("shots") or 0), group)


def build_task_views(study: StudyData) -> list[TaskView]:
    """One TaskView per task × shots × group, in task order."""
    results = curve_rows(study.results)
    group_cols = _group_columns(study)
    analysis = study.analysis or {}
    metric_table: dict[str, dict[str, Any]] = analysis.get("metrics") or {}
    level = float(((analysis.get("config") or {}).get("ci")) or 0.9)
    boot_label = f"{level:.0%} CI (bootstrap over seeds)"
    t_label = "95% CI (Student t over seeds)"

    keys: dict[TaskKey, pd.DataFrame] = {}
    if not results.empty:
        for vals, rows in results.groupby(["task", "shots", *group_cols], sort=True, dropna=False):
            vals = vals if isinstance(vals, tuple) else (vals,)
            group = tuple(sorted((c, str(v)) for c, v in zip(group_cols, vals[2:], strict=True)))
            keys[TaskKey(str(vals[0]), int(vals[1]), group)] = rows
    entries_by_key: dict[TaskKey, list[dict[str, Any]]] = {}
    for e in analysis.get("entries") or []:
        entries_by_key.setdefault(_key_of(e), []).append(e)
    for k in entries_by_key:
        keys.setdefault(k, results.iloc[0:0])
    verdicts = {_key_of(t): t for t in analysis.get("tasks") or []}
    mirages = {_key_of(m): m for m in analysis.get("mirage") or []}
    lengths: dict[TaskKey, list[dict[str, Any]]] = {}
    for lp in analysis.get("length_prediction") or []:
        lengths.setdefault(_key_of(lp), []).append(lp)
    shots_per_task: dict[str, set[int]] = {}
    for k in keys:
        shots_per_task.setdefault(k.task, set()).add(k.shots)

    run_member = dict(zip(study.results["run_id"], study.results["member"], strict=True))
    views = []
    for key in sorted(keys, key=lambda k: (k.task, k.shots, k.group)):
        rows = keys[key]
        entries = {e["metric"]: e for e in entries_by_key.get(key, [])}
        metric_names = list(dict.fromkeys([*entries, *sorted(rows["metric"].unique())]))
        kinds = {
            m: str(entries[m]["kind"])
            if m in entries
            else str(metric_table.get(m, {}).get("kind", metric_kind(m)))
            for m in metric_names
        }
        higher = {
            m: bool(entries[m].get("higher_is_better", True))
            if m in entries
            else bool(metric_table.get(m, {}).get("higher_is_better", True))
            for m in metric_names
            if m in entries or m in metric_table
        }
        # Discontinuous metrics first: each jump sits beside its continuous counterpart (REFERENCES §2).
        order = {m: i for i, m in enumerate(metric_names)}
        metric_names.sort(key=lambda m: (kinds[m] != "discontinuous", order[m]))
        panels = {}
        ci_labels = {}
        for axis in SCALE_AXES:
            axis_panels = []
            n_analysed = 0
            for m in metric_names:
                if m in entries and axis in (entries[m].get("curves") or {}):
                    axis_panels.append(_panel_from_entry(entries[m], axis, run_member, metric_table))
                    n_analysed += 1
                elif axis in rows and not rows[rows["metric"] == m].empty:
                    axis_panels.append(_panel_from_rows(rows[rows["metric"] == m], m, axis, kinds[m]))
            if axis_panels:
                panels[axis] = axis_panels
                # The band is what the analysis computed; panels it skipped are drawn from the raw rows.
                if n_analysed == len(axis_panels):
                    ci_labels[axis] = boot_label
                elif n_analysed == 0:
                    ci_labels[axis] = t_label
                else:
                    ci_labels[axis] = f"{boot_label}; {t_label} where not analysed"
        views.append(
            TaskView(
                key=key,
                label=key.label(show_shots=len(shots_per_task[key.task]) > 1),
                rows=rows,
                metrics=metric_names,
                kinds=kinds,
                higher_is_better=higher,
                panels=panels,
                ci_labels=ci_labels,
                entries=[entries[m] for m in metric_names if m in entries],
                verdict=verdicts.get(key),
                mirage=mirages.get(key),
                length_predictions=lengths.get(key, []),
            )
        )
    return views


def _floats(values: Any) -> list[float]:
    """JSON numbers (null → NaN) as floats."""
    return [math.nan if v is None else float(v) for v in (values or [])]


def _panel_from_entry(
    entry: dict[str, Any], axis: str, run_member: dict[str, str], metric_table: dict[str, dict[str, Any]]
) -> ScalingPanel:
    curve = entry["curves"][axis]
    points = curve.get("points") or {}
    xs = _floats(curve.get("x"))
    members = [str(m) for m in curve.get("members") or []]
    px = _floats(points.get("x"))
    run_ids = [str(r) for r in points.get("run_id") or []]
    # A point's member: through its run id, else the scale point at the same x.
    by_x = dict(zip(xs, members, strict=False))
    pm = [run_member.get(r) or by_x.get(x, "") for r, x in zip(run_ids or [""] * len(px), px, strict=False)]
    fit = (entry.get("fits") or {}).get(axis) or {}
    overlay = None
    if fit.get("status") == "ok":
        fc = fit.get("curve") or {}
        # Draw a threshold only when the chosen law has one (sigmoid, hinge): the u0 of a losing hinge under a
        # smooth curve is not a critical point.
        thr = fit.get("threshold") or {}
        thr = thr if thr.get("from_best") else {}
        ci = thr.get("ci") or [None, None]
        overlay = FitOverlay(
            x=_floats(fc.get("x")),
            y=_floats(fc.get("y")),
            label=str(fit.get("best") or "fit"),
            x0=thr.get("x0"),
            x0_lo=ci[0],
            x0_hi=ci[1],
        )
    # Chance is meaningful for a chance rule ("choice" or a number); "observed" is just the worst point.
    rule = (metric_table.get(entry["metric"]) or {}).get("chance", "choice")
    chance = entry.get("chance") if rule != "observed" else None
    return ScalingPanel(
        metric=str(entry["metric"]),
        kind=str(entry.get("kind", metric_kind(entry["metric"]))),
        points_x=px,
        points_y=_floats(points.get("y")),
        points_member=pm,
        x=xs,
        members=members,
        mean=_floats(curve.get("mean")),
        ci_low=_floats(curve.get("ci_low")),
        ci_high=_floats(curve.get("ci_high")),
        fit=overlay,
        chance=None if chance is None else float(chance),
        higher_is_better=entry.get("higher_is_better"),
    )


def _panel_from_rows(rows: pd.DataFrame, metric: str, axis: str, kind: str) -> ScalingPanel:
    final = final_rows(rows)
    per_member = []
    for member, g in final.groupby("member"):
        stderr = g["stderr"].to_numpy(float) if "stderr" in g else None
        mean, lo, hi = seed_ci(g["value"].to_numpy(float), stderr)
        per_member.append((float(g[axis].mean()), str(member), mean, lo, hi))
    per_member.sort()
    chance = None
    if "chance" in final and final["chance"].notna().any():
        chance = float(final["chance"].dropna().iloc[0])
    return ScalingPanel(
        metric=metric,
        kind=kind,
        points_x=final[axis].to_numpy(float).tolist(),
        points_y=final["value"].to_numpy(float).tolist(),
        points_member=final["member"].astype(str).tolist(),
        x=[p[0] for p in per_member],
        members=[p[1] for p in per_member],
        mean=[p[2] for p in per_member],
        ci_low=[p[3] for p in per_member],
        ci_high=[p[4] for p in per_member],
        chance=chance,
    )


def flops_per_token(results: pd.DataFrame) -> dict[str, float]:
    """Training FLOPs per token of each member, from its result rows (flops / tokens_seen)."""
    if "flops" not in results or "tokens_seen" not in results:
        return {}
    ok = results[(results["tokens_seen"] > 0) & results["flops"].notna()]
    ratio = (ok["flops"] / ok["tokens_seen"]).groupby(ok["member"]).median()
    return {str(m): float(v) for m, v in ratio.items() if np.isfinite(v) and v > 0}
