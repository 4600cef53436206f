"""`emergence run`: run (or resume) a study, from a built-in name or a YAML file, with dotted overrides."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from emergence.errors import UserError

if TYPE_CHECKING:
    from emergence.sweep.runner import StudyOutcome


def _split_study_arg(study: str | None, overrides: list[str] | None) -> tuple[str | None, list[str]]:
    """`emergence run train.lr=1e-3` means the default study with an override, not a study named so."""
    rest = list(overrides or [])
    if study is not None and "=" in study:
        return None, [study, *rest]
    return study, rest


def run_command(
    study: str | None = typer.Argument(
        None, help="A built-in study name (default: 'default') or a path to a study YAML file."
    ),
    overrides: list[str] | None = typer.Argument(
        None, help="Dotted overrides, e.g. budget.steps=300 train.lr=3e-3 seeds=[0,1,2]."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Study directory (default: runs/<study name>)."
    ),
    workers: int | None = typer.Option(None, "--workers", "-w", help="Worker processes (executor.workers)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run again the runs that failed before."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress display."),
) -> None:
    """Train every member × seed of a study, evaluate every checkpoint, analyse and write the report.

    Re-running skips finished runs and resumes interrupted ones; a failed run is recorded and the study goes
    on (exit code 1 when any run failed, after the report is written).
    """
    from emergence.sweep.runner import run_study_spec

    if workers is not None and workers < 1:
        raise UserError(f"--workers: must be at least 1, got {workers}")
    name, items = _split_study_arg(study, overrides)
    outcome = run_study_spec(
        name, items, out=out, workers=workers, retry_failed=retry_failed, progress=not quiet
    )
    _print_outcome(outcome)
    if outcome.failed:
        raise typer.Exit(1)


def _print_outcome(outcome: StudyOutcome) -> None:
    """The study's summary on stderr, and where the report is on stdout."""
    o = outcome
    typer.echo(
        f"{o.done}/{o.total} runs done, {o.failed} failed, {o.skipped} skipped ({o.wall_s:.1f} s)", err=True
    )
    if o.timings:
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in o.timings.items())
        typer.echo(f"  time by phase: {phases}", err=True)
    for run_id, error in o.failures.items():
        typer.echo(f"  failed {run_id}: {error}", err=True)
    if o.failed:
        typer.echo(f"  details: {Path(o.study_dir) / 'status.json'}", err=True)
    if o.report is not None:
        typer.echo(f"report: {o.report}")
    else:
        typer.echo(f"results: {Path(o.study_dir) / 'results.parquet'}")


def register(app: typer.Typer) -> None:
    """Add `emergence run`."""
    app.command("run")(run_command)
