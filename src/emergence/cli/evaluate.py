"""`emergence eval`: re-evaluate a study's saved checkpoints (no training) and rewrite its results."""

from __future__ import annotations

from pathlib import Path

import typer

from emergence.errors import UserError


def eval_command(
    study_dir: Path = typer.Argument(..., help="A study directory written by `emergence run`."),
    overrides: list[str] | None = typer.Argument(
        None, help="Dotted overrides of eval.*, analysis.* or executor.*, e.g. eval.shots=[0,2]."
    ),
    workers: int | None = typer.Option(None, "--workers", "-w", help="Worker processes (executor.workers)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress display."),
) -> None:
    """Evaluate every checkpoint of every trained run again; rewrite results.parquet, analysis and report."""
    from emergence.cli.run import _print_outcome
    from emergence.sweep.runner import evaluate_study

    if workers is not None and workers < 1:
        raise UserError(f"--workers: must be at least 1, got {workers}")
    outcome = evaluate_study(study_dir, list(overrides or []), workers=workers, progress=not quiet)
    _print_outcome(outcome)
    if outcome.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `emergence eval`."""
    app.command("eval")(eval_command)
