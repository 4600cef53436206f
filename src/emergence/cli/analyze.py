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
    mechanisms: bool = typer.Option(
        False, "--mechanisms", help="Also measure mechanisms on the checkpoints (docs/mechanisms.md)."
    ),
    mechanisms_steps: str = typer.Option(
        "all", "--mechanisms-steps", help="'all' checkpoints (training-time curves) or only the 'final' one."
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
    if mechanisms:
        section = measure_mechanisms(study_dir, mechanisms_steps)
        console.print(mechanisms_table(section))
    console.print(f"wrote {study_dir / 'analysis.json'}")


def measure_mechanisms(study_dir: Path, steps: str) -> dict[str, Any]:
    """Run the mechanism measurements with study.yaml's `mechanisms:` section (MechanismsConfig fields)."""
    from emergence.analysis.mechanisms import MechanismsConfig
    from emergence.analysis.study_mechanisms import measure_study
    from emergence.config import from_dict, load_yaml_dict

    if steps not in ("all", "final"):
        raise UserError(f"--mechanisms-steps: expected 'all' or 'final', got {steps!r}")
    section: dict[str, Any] = {}
    if (study_dir / "study.yaml").is_file():
        section = dict(load_yaml_dict(study_dir / "study.yaml").get("mechanisms") or {})
    section.pop("enabled", None)
    section.pop("steps", None)
    cfg = from_dict(MechanismsConfig, section, where="mechanisms")
    return measure_study(study_dir, cfg, steps=steps)  # type: ignore[arg-type]


def mechanisms_table(section: dict[str, Any]) -> Any:
    """One row per run: final-checkpoint headline numbers."""
    from rich.table import Table

    table = Table(title="Mechanisms (final checkpoint of each run)")
    cols = ("member", "seed", "params", "max induction", "ICL score", "tau_S (null)", "size law", "m", "chi")
    for col in cols:
        table.add_column(col)

    def f(x: Any, fmt: str = "{:.2f}") -> str:
        return fmt.format(x) if isinstance(x, int | float) else "-"

    for run in section["runs"]:
        s = (run.get("final") or {}).get("summary", {})
        table.add_row(
            str(run["member"]),
            str(run["seed"]),
            f(run.get("n_params"), "{:.3g}"),
            f(s.get("max_induction")),
            f(s.get("icl_score")),
            f"{f(s.get('tau_s'))} ({f(s.get('null_tau_s'))})",
            str(s.get("size_verdict") or "-"),
            f(s.get("branching_m")),
            f(s.get("chi_mean_rest")),
        )
    return table


def register(app: typer.Typer) -> None:
    """Add `emergence analyze`."""
    app.command("analyze")(analyze_command)
