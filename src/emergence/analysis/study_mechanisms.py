"""Mechanisms over a whole study: every checkpoint of every run, then phases aligned with the abilities.

    emergence analyze runs/default --mechanisms

For each run in the study's plan and each saved checkpoint, `measure_checkpoint` runs on the study's tasks
(heads, neurons, criticality, Jacobians, ablation, attribution: docs/mechanisms.md). Each measurement is
cached in `runs/<run_id>/mechanisms/step_XXXXXX.json` together with a key of the measurement settings, so a
re-run measures only what is new. The result lands under `analysis.json["mechanisms"]`:

    {"config": {...}, "steps": "all" | "final",
     "runs": [{"run_id", "member", "seed", "n_params", "points": [{"step", "tokens_seen", "summary": {...}}],
               "final": <full measurement of the last checkpoint>}],
     "phases": [{"run_id", "member", "seed", "task", "metric",
                 "ability_change_points": [...], "loss_change_points": [...],
                 "alignments": {summary field: phases.align(...) result}}],
     "training_phases": [per run: loss / ICL / induction curves, change points, lags (training_phases.py)]}

Checkpoints are log-spaced (0, 1, 2, 4, …), so change points are detected on the sequence of checkpoints and
reported in steps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from emergence.analysis import phases, training_phases
from emergence.analysis.mechanisms import MechanismsConfig, measure_checkpoint
from emergence.config import load_yaml_dict, to_dict
from emergence.errors import UserError
from emergence.io import read_json, read_jsonl, write_json

log = logging.getLogger(__name__)

# Summary fields whose change over training is aligned with the ability's jump.
ALIGNED_FIELDS = ("max_induction", "max_previous_token", "icl_score", "tau_s", "branching_m", "chi_mean_rest")
MIN_POINTS = 4  # a change point needs a curve of at least this many checkpoints


def _study_tasks(study_dir: Path) -> list[Any]:
    from emergence.tasks import make_task

    study = load_yaml_dict(study_dir / "study.yaml")
    specs = study.get("tasks") or []
    if not specs:
        raise UserError(f"{study_dir / 'study.yaml'}: no tasks to measure mechanisms on")
    # Held-out tasks are never trained on: mechanisms (and the phases aligned with abilities) read the
    # trained tasks, the distribution the model learned.
    return [make_task(t["name"], **(t.get("options") or {})) for t in specs if not t.get("held_out")]


def _key(cfg: MechanismsConfig, tasks: list[Any]) -> str:
    blob = json.dumps({"cfg": to_dict(cfg), "tasks": [[t.name, t.options] for t in tasks]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def measure_run(
    run_dir: Path, tasks: list[Any], cfg: MechanismsConfig, steps: Literal["all", "final"] = "all"
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, int | None]:
    """Measure (or read cached) checkpoints of one run → (points, final full measurement, n_params)."""
    from emergence.models.build import count_params
    from emergence.train.checkpoint import list_checkpoints, load_checkpoint

    ckpts = list_checkpoints(run_dir)
    if steps == "final":
        ckpts = ckpts[-1:]
    key = _key(cfg, tasks)
    points: list[dict[str, Any]] = []
    final: dict[str, Any] | None = None
    n_params: int | None = None
    for i, (step, path) in enumerate(ckpts):
        cache = run_dir / "mechanisms" / f"step_{step:06d}.json"
        m: dict[str, Any] | None = None
        if cache.exists():
            try:
                cached = read_json(cache)
                m = cached if cached.get("key") == key else None
            except UserError:
                m = None  # torn or foreign file: measure again
        if m is None:
            model, tokenizer, manifest = load_checkpoint(path)
            m = measure_checkpoint(model, tokenizer, tasks, cfg)
            m["key"] = key
            m["step"] = step
            m["tokens_seen"] = manifest.get("tokens_seen")
            m["n_params"] = count_params(model.cfg, non_embedding=False)
            write_json(cache, m)
        n_params = m.get("n_params", n_params)
        points.append({"step": step, "tokens_seen": m.get("tokens_seen"), "summary": m.get("summary", {})})
        if i == len(ckpts) - 1:
            final = m
    return points, final, n_params


def _ability_curve(results: pd.DataFrame, run_id: str, task: Any) -> tuple[str, pd.Series] | None:
    """The run's main discontinuous metric for `task` over steps (fewest shots, aggregate rows)."""
    metric = "accuracy" if task.kind == "choice" else "exact_match"
    df = results[
        (results["run_id"] == run_id) & (results["task"] == task.name) & (results["metric"] == metric)
    ]
    if "trial" in df.columns:
        df = df[df["trial"].fillna(-1) < 0]
    if "answer_len" in df.columns:
        df = df[df["answer_len"].isna()]
    if df.empty:
        return None
    df = df[df["shots"] == df["shots"].min()]
    return metric, df.groupby("step")["value"].mean().sort_index()


def study_phases(study_dir: Path, runs: list[dict[str, Any]], tasks: list[Any]) -> list[dict[str, Any]]:
    """Per run and task: change points of the ability, the training loss and each mechanism, with lags."""
    results_path = study_dir / "results.parquet"
    results = pd.read_parquet(results_path) if results_path.exists() else pd.DataFrame()
    out: list[dict[str, Any]] = []
    for run in runs:
        loss = read_jsonl(study_dir / "runs" / run["run_id"] / "metrics.jsonl")
        loss_steps = [r["step"] for r in loss if isinstance(r.get("loss"), int | float)]
        loss_vals = [float(r["loss"]) for r in loss if isinstance(r.get("loss"), int | float)]
        loss_cps = (
            phases.change_points(loss_steps, loss_vals, smooth_window=max(1, len(loss_vals) // 50))
            if len(loss_vals) >= MIN_POINTS
            else []
        )
        for task in tasks:
            curve = _ability_curve(results, run["run_id"], task) if not results.empty else None
            if curve is None:
                continue
            metric, ability = curve
            if len(ability) < MIN_POINTS:
                continue
            entry: dict[str, Any] = {
                "run_id": run["run_id"],
                "member": run["member"],
                "seed": run["seed"],
                "task": task.name,
                "metric": metric,
                "ability_change_points": phases.change_points(ability.index.tolist(), ability.to_numpy()),
                "loss_change_points": loss_cps,
                "alignments": {},
            }
            for field in ALIGNED_FIELDS:
                pts = [(p["step"], p["summary"].get(field)) for p in run["points"]]
                pts = [(s, v) for s, v in pts if isinstance(v, int | float) and np.isfinite(v)]
                if len(pts) < MIN_POINTS:
                    continue
                m_steps, m_vals = zip(*pts, strict=True)
                entry["alignments"][field] = phases.align(
                    ability.index.tolist(), ability.to_numpy(), list(m_vals), mechanism_steps=list(m_steps)
                )
            out.append(entry)
    return out


def measure_study(
    study_dir: str | Path,
    cfg: MechanismsConfig | None = None,
    *,
    steps: Literal["all", "final"] = "all",
    progress: bool = True,
) -> dict[str, Any]:
    """Measure every done run's checkpoints and align phases; merge into analysis.json["mechanisms"]."""
    study_dir = Path(study_dir)
    plan_path = study_dir / "plan.json"
    if not plan_path.exists():
        raise UserError(f"{study_dir}: no plan.json (run the study first with `emergence run`)")
    cfg = cfg or MechanismsConfig()
    tasks = _study_tasks(study_dir)
    plan = read_json(plan_path)
    todo = [e for e in plan if (study_dir / "runs" / e["run_id"] / "checkpoints").is_dir()]
    runs: list[dict[str, Any]] = []

    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        job = bar.add_task("mechanisms", total=len(todo))
        for e in todo:
            bar.update(job, description=f"mechanisms: {e['member']} seed {e['seed']}")
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                # empty-bin means and 0/0 ratios in sparse avalanche statistics end up as nulls in the output
                warnings.simplefilter("ignore", RuntimeWarning)
                points, final, n_params = measure_run(study_dir / "runs" / e["run_id"], tasks, cfg, steps)
            runs.append(
                {
                    "run_id": e["run_id"],
                    "member": e["member"],
                    "member_index": e.get("member_index"),
                    "seed": e["seed"],
                    "n_params": n_params,
                    "points": points,
                    "final": final,
                }
            )
            bar.advance(job)
    section = {
        "config": to_dict(cfg),
        "steps": steps,
        "runs": runs,
        "phases": study_phases(study_dir, runs, tasks),
        "training_phases": training_phases.study_training_phases(study_dir, runs),
    }
    if cfg.fourier:
        from emergence.analysis.grokking import measure_grokking

        section["grokking"] = measure_grokking(study_dir, todo, tasks, cfg)
    analysis_path = study_dir / "analysis.json"
    analysis = read_json(analysis_path) if analysis_path.exists() else {}
    analysis["mechanisms"] = section
    write_json(analysis_path, analysis)
    return section
