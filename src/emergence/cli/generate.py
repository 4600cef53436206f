"""`emergence generate RUN_DIR --prompt …`: sample continuations from a trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add `generate` to the app."""

    @app.command("generate")
    def generate(
        run_dir: Path = typer.Argument(..., help="A run directory (or one checkpoint directory)."),
        prompt: list[str] = typer.Option(
            ..., "--prompt", "-p", help="Prompt text; repeat for several prompts."
        ),
        step: int | None = typer.Option(None, "--step", help="Checkpoint step (default: the last one)."),
        max_new_tokens: int = typer.Option(32, "--max-new-tokens", min=1, help="Most tokens to generate."),
        temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0 = greedy."),
        top_k: int | None = typer.Option(
            None, "--top-k", min=1, help="Sample from the k most likely tokens."
        ),
        top_p: float | None = typer.Option(None, "--top-p", min=0.0, max=1.0, help="Nucleus sampling mass."),
        num_return_sequences: int = typer.Option(1, "--num-return-sequences", "-n", min=1),
        stop: list[str] = typer.Option(
            [], "--stop", help="Stop when the text contains this string (repeatable)."
        ),
        seed: int = typer.Option(0, "--seed", help="Seed of the sampling generator."),
        no_bos: bool = typer.Option(False, "--no-bos", help="Do not prepend <bos> (corpus-trained models)."),
    ) -> None:
        """Print samples from a checkpoint, one line per sample (prompt + continuation)."""
        from emergence.train.sample import generate_text

        for text in generate_text(
            run_dir,
            prompt,
            step=step,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            num_return_sequences=num_return_sequences,
            stop=stop,
            seed=seed,
            add_bos=not no_bos,
        ):
            typer.echo(text)
