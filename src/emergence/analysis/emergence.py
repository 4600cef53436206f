"""Per task × shots × metric emergence analysis of result rows → the `analysis.json` dictionary.

For every task, shot count, group (e.g. family) and metric this module builds curves over scale (final step
of each run) and over training steps, fits line / sigmoid / hinge (`fits.py`), computes the BIG-bench
normalised score, linearity and breakthroughness (`bigbench.py`), predicts the largest model from the smaller
ones, checks the PassUntil linearity (Hu et al. 2023), and classifies the curve by the documented rule of
docs/emergence-analysis.md. Per task it then runs the metric-choice ("mirage") check of Schaeffer et al. 2023:
does a jump under a discontinuous metric survive under a continuous one? The JSON schema is fixed in that
document.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emergence.analysis import bigbench, fits, scaling, scaling_law, stability
from emergence.analysis.answer_length import length_check, predict_exact_match  # noqa: F401 (re-exported)
from emergence.analysis.curves import build_curve, resolve_bounds
from emergence.analysis.generalisation import seen_unseen
from emergence.analysis.settings import AnalysisConfig, load_config, metric_spec  # noqa: F401 (re-exported)
from emergence.analysis.verdict import _fmt, classify
from emergence.config import to_dict
from emergence.errors import UserError
from emergence.io import read_json, write_json
from emergence.metric_table import METRICS, MetricSpec, register_metric  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
REQUIRED_COLUMNS = ("run_id", "step", "task", "metric", "value")
AXIS_UNITS = {"n_params": "params", "n_params_non_embedding": "non-embedding params", "flops": "FLOPs"}


# ----------------------------------------------------------------------------------------- prediction


def length_prediction(
    length_rows: pd.DataFrame, group_cols: list[str], cfg: AnalysisConfig
) -> list[dict[str, Any]]:
    """Predicted p^L against measured exact match per answer length (final steps; `answer_length.py`)."""
    out: list[dict[str, Any]] = []
    tok, em = cfg.length_token_metric, cfg.length_em_metric
    rows = length_rows[length_rows["metric"].isin([tok, em])]
    if rows.empty:
        return out
    keys = ["task", "shots", *group_cols]
    for key, g in rows.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        check = length_check(
            g, token_metric=tok, em_metric=em, length_column=cfg.length_column, axis=cfg.primary_axis
        )
        if check is None:
            continue
        head = {"task": str(key[0]), "shots": int(key[1]), "group": _group_dict(group_cols, key[2:])}
        out.append(head | check)
    return out


# ----------------------------------------------------------------------------------------------- driver


def _group_dict(cols: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
    return {
        c: (None if v is None or (isinstance(v, float) and math.isnan(v)) else _plain(v))
        for c, v in zip(cols, values, strict=True)
    }


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _prepare(
    df: pd.DataFrame, cfg: AnalysisConfig, warnings: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    """Check columns, fill optional ones, split off per-length rows: (rows, length rows, groups, axes)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(
            f"results: missing column(s) {', '.join(missing)} (see docs/architecture.md, Result row)"
        )
    if cfg.primary_axis not in df.columns:
        raise UserError(f"results: no {cfg.primary_axis!r} column for the primary axis")
    df = df.copy()
    if "shots" not in df:
        df["shots"] = 0
    if "seed" not in df:
        df["seed"] = 0
    if "member" not in df:
        df["member"] = df[cfg.primary_axis].map(lambda v: _fmt(float(v)))
        warnings.append(f"no 'member' column: members named by {cfg.primary_axis}")
    df["member"] = df["member"].astype(str)
    df["shots"] = pd.to_numeric(df["shots"], errors="coerce").fillna(0).astype(int)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    axes = []
    for axis in cfg.scale_axes:
        if axis not in df.columns:
            warnings.append(f"scale axis {axis!r} not in the results: skipped")
            continue
        df[axis] = pd.to_numeric(df[axis], errors="coerce")
        axes.append(axis)
    if cfg.trial_column in df.columns:
        # The evaluator writes one aggregate row per measurement (trial < 0) and optionally one row per
        # few-shot trial; use the aggregates when there are any, so that trials are not counted twice.
        trial = pd.to_numeric(df[cfg.trial_column], errors="coerce")
        aggregate = trial.isna() | (trial < 0)
        if aggregate.any():
            df = df[aggregate]
    df["_final"] = df["step"] == df.groupby("run_id")["step"].transform("max")
    groups = [c for c in cfg.split_by if c in df.columns]
    if cfg.length_column in df.columns:
        per_len = df[cfg.length_column].notna()
        return df[~per_len], df[per_len & df["_final"]], groups, axes
    return df, df.iloc[0:0], groups, axes


def _entry(
    key: tuple[Any, ...],
    rows: pd.DataFrame,
    groups: list[str],
    axes: list[str],
    cfg: AnalysisConfig,
    warnings: list[str],
) -> tuple[dict[str, Any], list[str]]:
    """Everything about one task × shots × group × metric, and the verdict's per-resample labels."""
    task, shots, *gvals, metric = key
    spec, known = metric_spec(str(metric), cfg)
    if not known:
        warnings.append(f"metric {metric!r} not in the metric table: read as higher-is-better, continuous")
    final = rows[rows["_final"]]
    agg = {"value": ("value", "mean"), "seed": ("seed", "first")}
    agg.update({a: (a, "mean") for a in axes})
    for extra in ("stderr", "n"):
        if extra in final.columns:
            agg[extra] = (extra, "mean")
    obs = final.groupby(["member", "run_id"], dropna=False).agg(**agg).reset_index()
    curves: dict[str, Any] = {}
    fit_blocks: dict[str, Any] = {}
    bb: dict[str, Any] = {}
    pred: dict[str, Any] = {}
    bounds: dict[str, tuple[float | None, float | None]] = {}
    for axis in axes:
        o = obs[np.isfinite(obs[axis]) & (obs[axis] > 0)]
        curves[axis], fit_blocks[axis], bb[axis], pred[axis], bounds[axis] = _scale_axis(
            o, axis, spec, final, cfg
        )
    low, high = bounds.get(cfg.primary_axis, (None, None))
    curves[cfg.time_axis], fits_step = _time_curves(rows, curves.get(cfg.primary_axis), low, high, cfg)
    primary = curves[cfg.primary_axis]
    if spec.kind == "discontinuous":
        pu = scaling.passuntil_fit(primary["x"], primary["mean"], cfg.min_points, cfg.min_delta_aic)
    else:
        pu = scaling.passuntil_fit([], [], cfg.min_points, cfg.min_delta_aic)
        pu.update(status="undefined", reason="defined for pass-rate (discontinuous) metrics only")
    pu = {"axis": cfg.primary_axis, **pu}
    p_obs = obs[np.isfinite(obs[cfg.primary_axis]) & (obs[cfg.primary_axis] > 0)]
    verdict, labels = _verdict(
        bb[cfg.primary_axis],
        fit_blocks[cfg.primary_axis],
        primary,
        p_obs,
        spec,
        (low, high),
        str(metric),
        cfg,
    )
    entry = {
        "task": str(task),
        "shots": int(shots),
        "group": _group_dict(groups, tuple(gvals)),
        "metric": str(metric),
        "higher_is_better": spec.higher_is_better,
        "kind": spec.kind,
        "compounds": spec.compounds,
        "chance": low,
        "best": high,
        "curves": curves,
        "fits": fit_blocks,
        "fits_step": fits_step,
        "bigbench": bb,
        "prediction": pred,
        "passuntil": pu,
        "verdict": verdict,
    }
    return entry, labels


def _scale_axis(
    o: pd.DataFrame, axis: str, spec: MetricSpec, final: pd.DataFrame, cfg: AnalysisConfig
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any], tuple[float | None, float | None]]:
    """Curve, fit, BIG-bench block, hold-out prediction and (low, high) of one metric on one scale axis."""
    curve = build_curve(o, axis, None, cfg, "member")
    px = np.array(curve["points"]["x"], float)
    py = np.array([np.nan if v is None else v for v in curve["points"]["y"]], float)
    fit = fits.fit_to_json(px, py, cfg.criterion, cfg.max_k, cfg.n_boot, cfg.ci, cfg.seed)
    lo_a, hi_a = resolve_bounds(spec, curve["mean"], final)
    bb = bigbench.score_block(
        curve["x"], curve["mean"], lo_a, hi_a, not spec.higher_is_better, cfg.max_breakthroughness
    )
    pred = fits.predict_holdout(
        px,
        py,
        holdout=cfg.holdout,
        min_points=cfg.min_points,
        criterion=cfg.criterion,
        max_k=cfg.max_k,
        n_boot=cfg.n_boot,
        ci=cfg.ci,
        seed=cfg.seed,
        members=dict(zip(curve["x"], curve["members"], strict=True)),
    )
    return curve, fit, bb, pred, (lo_a, hi_a)


def _time_curves(
    rows: pd.DataFrame,
    scale_curve: dict[str, Any] | None,
    low: float | None,
    high: float | None,
    cfg: AnalysisConfig,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One training curve per member (smallest first) and, with `fit_time_axis`, its fit.

    A member's training-time threshold is kept only when its curve leaves chance as the scale verdict
    requires of the family: the first step near chance and the last well above it (normalised scores
    against the scale axis's bounds). A curve that stays near chance has no jump to date.
    """
    time_col = cfg.time_axis
    curves: list[dict[str, Any]] = []
    fits_step: dict[str, Any] = {}
    for member, g in rows.groupby("member", sort=False):
        t_obs = g.groupby(["run_id", time_col], dropna=False).agg(
            value=("value", "mean"), seed=("seed", "first")
        )
        t_obs = t_obs.reset_index()
        t_obs["member"] = member
        c = build_curve(t_obs, time_col, str(member), cfg, time_col)
        curves.append(c)
        if cfg.fit_time_axis:
            ty = np.array([np.nan if v is None else v for v in c["points"]["y"]], float)
            fit = fits.fit_to_json(
                np.array(c["points"]["x"], float), ty, cfg.criterion, cfg.max_k, cfg.n_boot, cfg.ci, cfg.seed
            )
            _gate_time_threshold(fit, c, low, high, cfg)
            fits_step[str(member)] = fit
    # Order training curves like the scale axis, smallest member first.
    order = {m: i for i, m in enumerate(scale_curve["members"])} if scale_curve else {}
    curves.sort(key=lambda c: order.get(c["label"], len(order)))
    return curves, fits_step


def _gate_time_threshold(
    fit: dict[str, Any], curve: dict[str, Any], low: float | None, high: float | None, cfg: AnalysisConfig
) -> None:
    """Drop a training-time threshold whose curve does not go from near chance to well above it."""
    means = [m for m in curve["mean"] if m is not None]
    if fit.get("threshold") is None or not means or low is None or high is None or low == high:
        return
    first, last = (float(v) for v in bigbench.normalised_score(np.array([means[0], means[-1]]), low, high))
    if first <= cfg.small_max_score and last >= cfg.large_min_score:
        return
    fit["threshold"] = None
    fit["threshold_note"] = (
        f"no training-time threshold: the curve goes from score {first:.1f} to {last:.1f} "
        f"(a jump needs ≤ {cfg.small_max_score:g} at the start and ≥ {cfg.large_min_score:g} at the end)"
    )


def _verdict(
    bb: dict[str, Any],
    fit: dict[str, Any],
    curve: dict[str, Any],
    obs: pd.DataFrame,
    spec: MetricSpec,
    bounds: tuple[float | None, float | None],
    metric: str,
    cfg: AnalysisConfig,
) -> tuple[dict[str, Any], list[str]]:
    """The rule on the data, its stability over resamples, and the design's power: the final verdict."""
    v = classify(bb, fit, cfg.primary_axis, cfg)
    point = v["verdict"]
    n_pts = len(curve["points"]["x"])
    by_run = obs.set_index("run_id")
    run_ids = curve["points"]["run_id"]
    se = _column_of(by_run, "stderr", run_ids, n_pts)
    n_items = _column_of(by_run, "n", run_ids, n_pts)
    stab, labels = (None, [])
    if bb.get("status") != "degenerate":
        stab, labels = stability.stability(
            curve["points"], se, n_items, spec.kind == "discontinuous", bounds[0], bounds[1],
            fit.get("criterion", "aic"), cfg, metric,
        )  # fmt: skip
    seeds = [s for s in curve["n_seeds"] if s]
    items = n_items[np.isfinite(n_items)]
    design = stability.design_block(
        curve["x"], int(np.median(seeds)) if seeds else 1, int(np.median(items)) if items.size else 200, cfg
    )
    final = point if stab is None else stab["top"] if stab["p_top"] >= cfg.stability_bar else "borderline"
    label = final
    if design["status"] == "underpowered" and final != "emergent":
        final, label = "inconclusive", "inconclusive (design)"
    v.update(
        verdict=final,
        label=label,
        point_verdict=point,
        stability=stab,
        deciding=stability.deciding_margin(v["margins"], stab) if final == "borderline" and stab else None,
        design=design,
    )
    return v, labels


def _column_of(by_run: pd.DataFrame, col: str, run_ids: list[str], n: int) -> np.ndarray:
    """A per-run column in the order of a curve's points (nan where absent)."""
    if col not in by_run.columns:
        return np.full(n, np.nan)
    return pd.to_numeric(by_run[col].reindex(run_ids), errors="coerce").to_numpy(float)


def mirage_outcome(
    verdicts: dict[str, str], kinds: dict[str, str], compounding: set[str]
) -> tuple[str, list[str], list[str]]:
    """(outcome, discontinuous metrics that jump, continuous controls that jump) from per-metric labels."""
    jumps = [m for m, v in verdicts.items() if kinds[m] == "discontinuous" and v == "emergent"]
    controls = [m for m in verdicts if kinds[m] == "continuous" and m not in compounding]
    cont_jumps = [m for m in controls if verdicts[m] == "emergent"]
    if not jumps:
        return "no_jump", jumps, cont_jumps
    if not controls:
        return "untested", jumps, cont_jumps
    return ("robust" if cont_jumps else "mirage"), jumps, cont_jumps


def task_label(verdicts: dict[str, str], kinds: dict[str, str], compounding: set[str]) -> str:
    """The task's verdict from its metrics' verdicts (docs/emergence-analysis.md, "Task verdict")."""
    outcome, _, cont_jumps = mirage_outcome(verdicts, kinds, compounding)
    if outcome in ("robust", "untested") or cont_jumps:
        return "emergent"
    if outcome == "mirage":
        return "mirage"
    labels = set(verdicts.values())
    if "smooth" in labels:
        return "smooth"
    if labels == {"absent"}:
        return "absent"
    return "inconclusive"


def mirage_check(entries: list[dict[str, Any]], axis: str, multi_token: bool = False) -> dict[str, Any]:
    """Schaeffer et al. 2023: does a jump under a discontinuous metric survive under a continuous one?

    With `multi_token` (the task's answers have more than one token), a compounding metric (the answer's
    probability, exp Σ log p) is set aside: like exact match it is ~p^L of per-token quality, so it neither
    confirms a jump nor serves as the smooth control. It reads the rule's verdict on the data as measured
    (`point_verdict`); the task verdict's stability says how often the same outcome comes out on resamples.
    """
    first = entries[0]
    metrics = []
    for e in entries:
        bb, fit = e["bigbench"].get(axis, {}), e["fits"].get(axis, {})
        models = fit.get("models") or {}
        metrics.append(
            {
                "metric": e["metric"],
                "kind": e["kind"],
                "compounds": bool(multi_token and e.get("compounds", False)),
                "verdict": _point(e),
                "best_fit": fit.get("best"),
                "breakthroughness": bb.get("breakthroughness"),
                "clipped": bool(bb.get("clipped", False)),
                "delta_vs_line": fit.get("delta_vs_line"),
                # How well the chosen law and the smooth one (a line in log scale) fit the per-seed points.
                "r2": (models.get(fit.get("best")) or {}).get("r2"),
                "r2_line": (models.get("line") or {}).get("r2"),
                "threshold": e["verdict"].get("threshold"),
            }
        )
    compounding = {m["metric"] for m in metrics if m["compounds"]}
    verdicts = {m["metric"]: m["verdict"] for m in metrics}
    kinds = {m["metric"]: m["kind"] for m in metrics}
    outcome, jumps, cont_jumps = mirage_outcome(verdicts, kinds, compounding)
    cont = [m for m in metrics if m["kind"] == "continuous" and not m["compounds"]]
    survives = {"robust": True, "mirage": False}.get(outcome)
    if outcome == "no_jump":
        reason = "no discontinuous metric is emergent"
    elif outcome == "untested":
        reason = f"emergent under {', '.join(jumps)}; no continuous metric to check it against"
    elif outcome == "robust":
        reason = f"the jump under {', '.join(jumps)} survives under {', '.join(cont_jumps)}"
    else:
        smooth = ", ".join(f"{m['metric']} ({m['verdict']})" for m in cont)
        reason = (
            f"the jump under {', '.join(jumps)} disappears under {smooth}: "
            "consistent with an artefact of the metric (Schaeffer et al. 2023)"
        )
    if compounding and jumps:
        reason += (
            "; "
            + ", ".join(f"{m['metric']} ({m['verdict']})" for m in metrics if m["compounds"])
            + " compounds over the answer's tokens as exact match does and is not a control"
        )
    return {
        "task": first["task"],
        "shots": first["shots"],
        "group": first["group"],
        "axis": axis,
        "outcome": outcome,
        "jump_survives": survives,
        "metrics": metrics,
        "reason": reason,
    }


def _point(e: dict[str, Any]) -> str:
    return str(e["verdict"].get("point_verdict", e["verdict"]["verdict"]))


def task_verdict(
    entries: list[dict[str, Any]],
    mirage: dict[str, Any],
    labels: dict[str, list[str]] | None = None,
    cfg: AnalysisConfig | None = None,
) -> dict[str, Any]:
    """One verdict per task × shots × group, with a one-line summary over its metrics.

    `labels` holds each metric's per-resample verdicts (the same seed resamples for every metric): the task
    rule is applied to each resample for the task's stability, as the metric rule is for each metric's.
    """
    cfg = cfg or AnalysisConfig()
    by_metric = {e["metric"]: e["verdict"]["verdict"] for e in entries}
    parts = []
    for e in entries:
        v = e["verdict"]
        text = f"{v.get('label', v['verdict'])} under {e['metric']}"
        th = v.get("threshold")
        if v["verdict"] == "emergent" and th:
            unit = AXIS_UNITS.get(v["axis"], v["axis"])
            text += f" at ~{_fmt(th['x0'])} {unit}"
            if th.get("ci"):
                text += f" [{_fmt(th['ci'][0])}, {_fmt(th['ci'][1])}]"
            if th.get("bracket"):
                text += f" (between sampled {_fmt(th['bracket'][0])} and {_fmt(th['bracket'][1])})"
        parts.append(text)
    kinds = {e["metric"]: e["kind"] for e in entries}
    compounding = {m["metric"] for m in mirage["metrics"] if m.get("compounds")}
    point = task_label({e["metric"]: _point(e) for e in entries}, kinds, compounding)
    stab = None
    if labels and all(labels.get(e["metric"]) for e in entries):
        n = min(len(labels[e["metric"]]) for e in entries)
        per_resample = [
            task_label({e["metric"]: labels[e["metric"]][i] for e in entries}, kinds, compounding)
            for i in range(n)
        ]
        stab = stability.summarise(per_resample, None, cfg)
    verdict = point if stab is None else stab["top"] if stab["p_top"] >= cfg.stability_bar else "borderline"
    label = verdict
    designs = [e["verdict"].get("design") or {} for e in entries]
    if verdict not in ("emergent", "mirage") and any(d.get("status") == "underpowered" for d in designs):
        verdict, label = "inconclusive", "inconclusive (design)"
    first = entries[0]
    return {
        "task": first["task"],
        "shots": first["shots"],
        "group": first["group"],
        "verdict": verdict,
        "label": label,
        "point_verdict": point,
        "stability": stab,
        "summary": "; ".join(parts),
        "by_metric": by_metric,
    }


def _task_key(e: dict[str, Any]) -> tuple[Any, ...]:
    return (e["task"], e["shots"], tuple(e["group"].items()))


def _multi_token_tasks(length_rows: pd.DataFrame) -> set[str]:
    """Tasks whose answers were measured at more than one token (the per-length rows of the p^L check)."""
    if length_rows is None or length_rows.empty or "answer_len" not in length_rows.columns:
        return set()
    longest = length_rows.groupby("task")["answer_len"].max()
    return {str(t) for t, n in longest.items() if n > 1}


def analyze_results(df: pd.DataFrame, cfg: AnalysisConfig | None = None) -> dict[str, Any]:
    """Analyse result rows (long format) into the analysis.json dictionary (docs/emergence-analysis.md)."""
    cfg = cfg if cfg is not None else AnalysisConfig()
    warnings: list[str] = []
    rows, length_rows, groups, axes = _prepare(df, cfg, warnings)
    keys = ["task", "shots", *groups, "metric"]
    entries = []
    resampled: dict[tuple[Any, ...], dict[str, list[str]]] = {}
    for key, g in rows.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        log.debug("analysing %s", key)
        e, labels = _entry(key, g, groups, axes, cfg, warnings)
        entries.append(e)
        resampled.setdefault(_task_key(e), {})[e["metric"]] = labels
    mirage, tasks = [], []
    by_task: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for e in entries:
        by_task.setdefault(_task_key(e), []).append(e)
    multi = _multi_token_tasks(length_rows)
    for tkey, ents in by_task.items():
        m = mirage_check(ents, cfg.primary_axis, multi_token=ents[0]["task"] in multi)
        mirage.append(m)
        tasks.append(task_verdict(ents, m, resampled.get(tkey), cfg))
    study = None
    if "study" in df.columns and df["study"].notna().any():
        study = str(df["study"].dropna().iloc[0])
    specs = {name: METRICS.get(name) for name in METRICS.names()} | dict(cfg.metrics)
    out = {
        "schema_version": SCHEMA_VERSION,
        "study": study,
        "config": to_dict(cfg),
        "metrics": {name: to_dict(s) for name, s in sorted(specs.items())},
        "n_rows": len(df),
        "axes": {"scale": axes, "time": cfg.time_axis, "primary": cfg.primary_axis},
        "warnings": sorted(set(warnings)),
        "entries": entries,
        "mirage": mirage,
        "length_prediction": length_prediction(length_rows, groups, cfg),
        "tasks": tasks,
        # Kaplan / Chinchilla fits of held-out LM loss (analysis/scaling_law.py); [] without lm_loss rows.
        "scaling_laws": scaling_law.analyze_scaling_laws(rows, groups, cfg.n_boot, cfg.ci, cfg.seed),
    }
    held_out = seen_unseen(rows, groups)
    if held_out is not None:  # only studies with held-out tasks get the key (docs/studies.md)
        out["held_out"] = held_out
    return json_safe(out)


def json_safe(obj: Any) -> Any:
    """Plain JSON data: NaN/±inf become None, numpy scalars become Python numbers, tuples become lists."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(to_dict(obj))
    return obj


def analyze_study(study_dir: str | Path, cfg: AnalysisConfig | None = None) -> dict[str, Any]:
    """Read STUDY_DIR/results.parquet, analyse it and write STUDY_DIR/analysis.json atomically."""
    study_dir = Path(study_dir)
    path = study_dir / "results.parquet"
    if not path.is_file():
        raise UserError(f"no results to analyse: {path} not found (run the study's evaluation first)")
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a torn or foreign file
        raise UserError(f"{path}: cannot read parquet: {e}") from None
    if df.empty:
        raise UserError(f"{path}: no result rows")
    result = analyze_results(df, cfg)
    out_path = study_dir / "analysis.json"
    # Other analyses (e.g. "mechanisms") may have added top-level keys of their own: keep them.
    if out_path.is_file():
        try:
            old = read_json(out_path)
        except UserError:
            old = None
        if isinstance(old, dict):
            result = {**{k: v for k, v in old.items() if k not in result}, **result}
    write_json(out_path, result)
    return result
