"""`emergence train CONFIG.yaml [key=value …] [--out RUN_DIR]`: train one model (resumes from `latest`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add `train` to the app."""

    @app.command("train")
    def train(
        config: Path = typer.Argument(..., help="Run config YAML (model, data, train sections)."),
        overrides: list[str] = typer.Argument(
            None, help="Dotted overrides, e.g. train.lr=3e-4 model.n_layer=4."
        ),
        out: Path | None = typer.Option(
            None, "--out", "-o", help="Run directory (default: runs/<config file name>)."
        ),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on a TTY."),
    ) -> None:
        """Train one model with log-spaced checkpoints; an interrupted run resumes from its `latest`."""
        from emergence.train.config import load_run_config
        from emergence.train.trainer import train_run

        run_cfg = load_run_config(config, list(overrides or []))
        run_dir = out if out is not None else Path("runs") / config.stem
        summary = train_run(run_cfg, run_dir, progress=progress)
        summary.pop("checkpoints", None)
        from emergence.train.distributed import context_from_env

        if context_from_env().is_main:  # under torchrun, one summary, from rank 0
            typer.echo(json.dumps(summary, indent=2))
