"""`emergence export RUN_DIR --to DIR`: a checkpoint as a Hugging Face model directory."""

from __future__ import annotations

from pathlib import Path

import typer


def export_run(run_dir: Path, to: Path, step: int | None = None) -> Path:
    """Export the checkpoint of `run_dir` (a given step, else the last) to `to`; returns the directory."""
    from emergence.models.hf import export_gpt2
    from emergence.train.checkpoint import load_checkpoint, resolve_checkpoint

    ckpt = resolve_checkpoint(run_dir, step)
    model, tokenizer, manifest = load_checkpoint(ckpt)
    info = {
        "checkpoint": str(ckpt.resolve()),
        "step": manifest.get("step"),
        "tokens_seen": manifest.get("tokens_seen"),
    }
    return export_gpt2(model, tokenizer, to, info=info)


def register(app: typer.Typer) -> None:
    """Add `export`."""

    @app.command("export")
    def export_cmd(
        run_dir: Path = typer.Argument(..., help="A run directory or one checkpoint directory."),
        to: Path = typer.Option(
            ..., "--to", help="Output directory (created; an earlier export is replaced)."
        ),
        step: int | None = typer.Option(None, "--step", help="Checkpoint step (default: the last one)."),
    ) -> None:
        """Export a checkpoint that transformers' AutoModelForCausalLM and AutoTokenizer load offline."""
        out = export_run(run_dir, to, step)
        typer.echo(f"exported to {out}")
