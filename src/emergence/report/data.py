"""Load a finished (or partly finished) study directory into one in-memory view for the report.

The report never retrains or re-evaluates: it reads what the study left on disk

    STUDY_DIR/study.yaml                       resolved study config (optional: the report shows what it has)
    STUDY_DIR/results.parquet                  long-format result rows (required)
    STUDY_DIR/analysis.json                    emergence analysis (optional: without it, no fits or verdicts)
    STUDY_DIR/environment.json                 environment recorded at run time (optional)
    STUDY_DIR/runs/<run_id>/{config.yaml, status.json, metrics.jsonl}

and tolerates the optional parts being absent, so that a report can be drawn for a study still running.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from emergence.errors import UserError
from emergence.io import read_json, read_jsonl, read_yaml, sha256_file

# The result-row columns (docs/architecture.md) the report cannot do without.
REQUIRED_COLUMNS = ("run_id", "member", "n_params", "seed", "step", "task", "metric", "value")


@dataclass(frozen=True)
class RunInfo:
    """One run's directory: its status, error, runtime, resolved config and training log."""

    run_id: str
    status: str  # pending | running | done | failed | unknown
    error: str | None
    member: str | None
    seed: int | None
    runtime_s: float | None
    started: dt.datetime | None
    finished: dt.datetime | None
    config: dict[str, Any]
    metrics: pd.DataFrame  # rows of metrics.jsonl (step, loss, lr, …); empty when the log is absent
    traceback: str | None = None  # the end of a failed run's traceback file (error.txt)


@dataclass(frozen=True)
class StudyData:
    """Everything the report shows, read once from the study directory."""

    study_dir: Path
    name: str
    config: dict[str, Any]
    config_text: str
    results: pd.DataFrame
    results_sha256: str
    runs: list[RunInfo]
    analysis: dict[str, Any] | None
    recorded_environment: dict[str, Any] = field(default_factory=dict)

    def members(self) -> pd.DataFrame:
        """One row per member (model size), ordered by parameter count: n_params, seeds, runs, flops."""
        df = self.results
        cols = {"n_params": ("n_params", "max"), "seeds": ("seed", "nunique"), "runs": ("run_id", "nunique")}
        if "n_params_non_embedding" in df:
            cols["n_params_non_embedding"] = ("n_params_non_embedding", "max")
        if "flops" in df:
            cols["flops"] = ("flops", "max")
        if df.empty:
            return pd.DataFrame(columns=["member", *cols])
        out = df.groupby("member", sort=False).agg(**cols).reset_index()
        return out.sort_values(["n_params", "member"], kind="stable").reset_index(drop=True)


def load_study(study_dir: str | Path) -> StudyData:
    """Read a study directory; a missing directory or results file is a UserError naming it."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise UserError(f"study directory not found: {study_dir}")
    results_path = study_dir / "results.parquet"
    if not results_path.is_file():
        raise UserError(
            f"no results in {study_dir}: {results_path.name} is missing (run `emergence run` or "
            "`emergence evaluate` first)"
        )
    results = _read_results(results_path)

    config: dict[str, Any] = {}
    config_text = ""
    study_yaml = study_dir / "study.yaml"
    if study_yaml.is_file():
        config_text = study_yaml.read_text(encoding="utf-8")
        loaded = read_yaml(study_yaml)
        if loaded is not None and not isinstance(loaded, dict):
            raise UserError(f"{study_yaml}: expected a mapping at the top level, got {type(loaded).__name__}")
        config = loaded or {}

    analysis = None
    analysis_path = study_dir / "analysis.json"
    if analysis_path.is_file():
        analysis = read_json(analysis_path)
        if not isinstance(analysis, dict):
            raise UserError(f"{analysis_path}: expected a JSON object at the top level")

    recorded_env: dict[str, Any] = {}
    for candidate in (study_dir / "environment.json", study_dir / "metadata.json"):
        if candidate.is_file():
            data = read_json(candidate)
            if isinstance(data, dict):
                recorded_env.update(data.get("environment", data))
    if isinstance(config.get("environment"), dict):
        recorded_env = {**config["environment"], **recorded_env}

    name = str(config.get("name") or _first(results, "study") or study_dir.name)
    runs = _load_runs(study_dir / "runs", results)
    return StudyData(
        study_dir=study_dir,
        name=name,
        config=config,
        config_text=config_text,
        results=results,
        results_sha256=sha256_file(results_path),
        runs=runs,
        analysis=analysis,
        recorded_environment=recorded_env,
    )


def final_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Rows at each run's last evaluated step: the points of a scaling curve (one per member × seed)."""
    if results.empty:
        return results
    last = results.groupby("run_id")["step"].transform("max")
    return results[results["step"] == last]


def _read_results(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file; all mean the same to the user
        raise UserError(f"{path}: cannot read results ({type(e).__name__}: {e})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{path}: result rows lack column(s) {', '.join(missing)} (see docs/architecture.md)")
    if "shots" not in df:
        df["shots"] = 0
    df = df.dropna(subset=["value"]).copy()
    df["member"] = df["member"].astype(str)
    df["task"] = df["task"].astype(str)
    df["metric"] = df["metric"].astype(str)
    df["run_id"] = df["run_id"].astype(str)
    df["shots"] = df["shots"].fillna(0).astype(int)
    return df.reset_index(drop=True)


def _first(df: pd.DataFrame, column: str) -> Any:
    if column in df and not df.empty:
        return df[column].iloc[0]
    return None


def _planned_runs(study_dir: Path) -> list[dict[str, Any]]:
    """The runner's plan.json (a list of {run_id, member, seed, …}): runs not started have no directory."""
    path = study_dir / "plan.json"
    if not path.is_file():
        return []
    plan = read_json(path)
    if isinstance(plan, dict):
        plan = plan.get("runs", [])
    return [r for r in plan if isinstance(r, dict) and r.get("run_id")] if isinstance(plan, list) else []


def _load_runs(runs_dir: Path, results: pd.DataFrame) -> list[RunInfo]:
    """The study's runs: those in plan.json when there is one (a run directory left by an earlier plan, e.g.
    before a member was edited, is not part of this study), else every directory under runs/."""
    by_run = results.drop_duplicates("run_id").set_index("run_id") if not results.empty else None
    runs: list[RunInfo] = []
    run_dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []
    plan = _planned_runs(runs_dir.parent)
    planned_by_id = {str(r["run_id"]): r for r in plan}
    if plan:
        run_dirs = [p for p in run_dirs if p.name in planned_by_id]
    on_disk = {p.name for p in run_dirs}
    for planned in plan:
        if str(planned["run_id"]) in on_disk:
            continue
        runs.append(
            RunInfo(
                run_id=str(planned["run_id"]),
                status="pending",
                error=None,
                member=str(planned["member"]) if planned.get("member") is not None else None,
                seed=_as_int(planned.get("seed")),
                runtime_s=None,
                started=None,
                finished=None,
                config={},
                metrics=pd.DataFrame(),
            )
        )
    for run_dir in run_dirs:
        run_id = run_dir.name
        status_path = run_dir / "status.json"
        status: dict[str, Any] = {}
        if status_path.is_file():
            loaded = read_json(status_path)
            status = loaded if isinstance(loaded, dict) else {"status": str(loaded)}
        config: dict[str, Any] = {}
        if (run_dir / "config.yaml").is_file():
            loaded = read_yaml(run_dir / "config.yaml")
            config = loaded if isinstance(loaded, dict) else {}
        metrics = pd.DataFrame(read_jsonl(run_dir / "metrics.jsonl"))
        member, seed = _run_identity(run_id, status, config, by_run, planned_by_id.get(run_id))
        started = _parse_time(status.get("started_at", status.get("started")))
        finished = _parse_time(status.get("finished_at", status.get("finished", status.get("ended_at"))))
        runs.append(
            RunInfo(
                run_id=run_id,
                status=str(status.get("status", status.get("state", "unknown"))),
                error=_error_text(status.get("error")),
                member=member,
                seed=seed,
                runtime_s=_runtime(status, started, finished, metrics),
                started=started,
                finished=finished,
                config=config,
                metrics=metrics,
                traceback=_traceback_tail(run_dir, status),
            )
        )
    return runs


def _traceback_tail(run_dir: Path, status: dict[str, Any], max_lines: int = 25) -> str | None:
    """The last lines of the traceback a failed run left (the file status.json names, else error.txt)."""
    if status.get("status", status.get("state")) != "failed":
        return None
    name = status.get("traceback_file") or "error.txt"
    path = run_dir / str(name)
    if path.parent != run_dir or not path.is_file():  # only files inside the run directory
        return None
    lines = path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
    return "\n".join(lines[-max_lines:]) or None


def _run_identity(
    run_id: str,
    status: dict[str, Any],
    config: dict[str, Any],
    by_run: pd.DataFrame | None,
    planned: dict[str, Any] | None = None,
) -> tuple[str | None, int | None]:
    """Member and seed of a run: from its status.json (the runner writes both there, also for a failed run,
    which has no result rows), else its result rows, else plan.json, else its resolved config."""
    if status.get("member"):
        return str(status["member"]), _as_int(status.get("seed"))
    if by_run is not None and run_id in by_run.index:
        row = by_run.loc[run_id]
        return str(row["member"]), _as_int(row["seed"])
    if planned and planned.get("member") is not None:
        return str(planned["member"]), _as_int(planned.get("seed"))
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    member = config.get("member", model.get("name", config.get("name")))
    seed = config.get("seed", train.get("seed"))
    return (str(member) if member is not None else None), _as_int(seed)


def _as_int(v: Any) -> int | None:
    try:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
    except (TypeError, ValueError):
        return None


def _error_text(error: Any) -> str | None:
    """A failed run's error as one readable string (status.json may hold a string or a mapping)."""
    if error is None or error == "":
        return None
    if isinstance(error, dict):
        kind = error.get("type") or error.get("kind")
        message = error.get("message") or error.get("msg") or error.get("error")
        if message is None and error.get("traceback"):
            message = str(error["traceback"]).strip().splitlines()[-1]
        text = f"{kind}: {message}" if kind and message else str(message or kind or error)
        return text
    return str(error)


def _parse_time(value: Any) -> dt.datetime | None:
    """ISO-8601 strings or Unix seconds → aware datetime; anything else → None."""
    if value is None:
        return None
    try:
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
        t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _runtime(
    status: dict[str, Any], started: dt.datetime | None, finished: dt.datetime | None, metrics: pd.DataFrame
) -> float | None:
    """Seconds a run took: recorded directly, else finish − start, else the training log's elapsed time."""
    for key in ("runtime_s", "elapsed_s", "wall_s", "duration_s", "seconds"):
        value = status.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    if started and finished:
        return max(0.0, (finished - started).total_seconds())
    for key in ("elapsed_s", "time_s", "wall_s"):
        if key in metrics and metrics[key].notna().any():
            return float(metrics[key].max())
    return None
