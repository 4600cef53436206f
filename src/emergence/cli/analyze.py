"""`emergence analyze STUDY_DIR`: emergence analysis of a study's results → analysis.json, verdict table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from emergence.errors import UserError


def analysis_config_for(study_dir: Path, overrides: list[str]) -> Any:
    """AnalysisConfig from study.yaml's `analysis:` section (if present) plus `key=value` overrides."""
    from emergence.analysis.emergence import load_config
    from emergence.config import apply_overrides, load_yaml_dict

    section: dict[str, Any] = {}
    study_yaml = study_dir / "study.yaml"
    if study_yaml.is_file():
        section = dict(load_yaml_dict(study_yaml).get("analysis") or {})
    # Accept both `n_boot=100` and `analysis.n_boot=100`.
    items = [o.removeprefix("analysis.") for o in overrides]
    return load_config(apply_overrides(section, items))


def verdict_table(result: dict[str, Any]) -> Any:
    """A rich Table with one row per task × shots × group: verdict, mirage outcome and summary."""
    from rich.table import Table

    styles = {"emergent": "bold green", "mirage": "bold yellow", "smooth": "cyan", "absent": "dim"}
    mirage = {(m["task"], m["shots"], str(m["group"])): m["outcome"] for m in result.get("mirage", [])}
    table = Table(title=f"Emergence verdicts ({result.get('study') or 'study'})", show_lines=False)
    for col in ("task", "shots", "group", "verdict", "mirage check", "summary"):
        table.add_column(col, overflow="fold")
    for t in result.get("tasks", []):
        group = ", ".join(f"{k}={v}" for k, v in t["group"].items()) or "-"
        style = styles.get(t["verdict"], "")
        table.add_row(
            t["task"],
            str(t["shots"]),
            group,
            f"[{style}]{t['verdict']}[/]" if style else t["verdict"],
            mirage.get((t["task"], t["shots"], str(t["group"])), "-"),
            t["summary"],
        )
    return table


def analyze_command(
    study_dir: Path = typer.Argument(..., help="A study directory containing results.parquet."),
    overrides: list[str] | None = typer.Argument(
        None,
        help="AnalysisConfig overrides, e.g. n_boot=100 large_min_score=60 (docs/emergence-analysis.md).",
    ),
) -> None:
    """Fit thresholds, compute linearity/breakthroughness, check metric mirages; write analysis.json."""
    from rich.console import Console

    from emergence.analysis.emergence import analyze_study

    if not study_dir.is_dir():
        raise UserError(f"not a study directory: {study_dir}")
    cfg = analysis_config_for(study_dir, list(overrides or []))
    result = analyze_study(study_dir, cfg)
    console = Console()
    console.print(verdict_table(result))
    for w in result.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")
    console.print(f"wrote {study_dir / 'analysis.json'}")


def register(app: typer.Typer) -> None:
    """Add `emergence analyze`."""
    app.command("analyze")(analyze_command)
