"""`emergence report STUDY_DIR`: re-render report.html and figures/ from saved results (no retraining)."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    study_dir: Path = typer.Argument(..., help="Study directory with results.parquet (e.g. runs/default)."),
    svg: bool = typer.Option(False, "--svg", help="Also write every figure as SVG under figures/."),
) -> None:
    """Render STUDY_DIR/report.html and STUDY_DIR/figures/ from results.parquet and analysis.json."""
    from emergence.report import render_report  # matplotlib loads only when this command runs

    out = render_report(study_dir, svg=svg)
    typer.echo(f"report: {out}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("report")(report)
