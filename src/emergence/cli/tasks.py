"""`emergence tasks list` and `emergence tasks show NAME`: browse the task suite from the command line."""

from __future__ import annotations

import typer


def _visible(text: str) -> str:
    """Show newlines and tabs as escapes so that one example stays on one table row."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def _unwrap(doc: str) -> str:
    """Join a docstring's hard-wrapped paragraphs so that the terminal can wrap them to its width."""
    return "\n\n".join(" ".join(p.split("\n")) for p in doc.split("\n\n"))


def register(app: typer.Typer) -> None:
    """Add the `tasks` command group to the app."""
    tasks_app = typer.Typer(help="List the task suite and preview examples.", no_args_is_help=True)
    app.add_typer(tasks_app, name="tasks")

    @tasks_app.command("list")
    def list_tasks() -> None:
        """Table of every task: name, kind, description, options with their defaults."""
        from rich.console import Console
        from rich.table import Table

        from emergence.tasks.catalog import task_catalog

        table = Table(title="Tasks", show_lines=True)
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("kind", no_wrap=True)
        table.add_column("description")
        table.add_column("options (default)")
        for info in task_catalog():
            opts = "\n".join(f"{name}={default!r}" for name, default, _ in info.options)
            table.add_row(info.name, info.kind, info.description, opts)
        Console(highlight=False).print(table)

    @tasks_app.command("show")
    def show(
        name: str = typer.Argument(..., help="Task name (see `emergence tasks list`)."),
        option: list[str] = typer.Option(
            [], "--option", "-o", help="Task option key=value (repeatable), e.g. -o digits=3 -o path=t.jsonl."
        ),
        n: int = typer.Option(5, "-n", "--n", min=1, help="Number of examples to show."),
        split: str = typer.Option("test", "--split", help="train or test."),
        seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    ) -> None:
        """The task's documentation, resolved options and a few examples."""
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from emergence.tasks.catalog import parse_option_args, preview, task_info

        info = task_info(name)
        task, examples = preview(name, parse_option_args(option), split, n, seed)  # type: ignore[arg-type]
        console = Console(highlight=False)
        console.print(Text(f"{task.name} ({task.kind})", style="bold"))
        console.print(Text(_unwrap(info.doc)))
        console.print()
        helps = {k: h for k, _, h in info.options}
        opts = Table(title="options", show_header=True)
        opts.add_column("option", no_wrap=True)
        opts.add_column("value")
        opts.add_column("meaning")
        for key, value in task.options.items():
            opts.add_row(key, repr(value), helps.get(key, ""))
        console.print(opts)
        console.print(
            Text(
                f"metrics: {', '.join(task.metrics)}\nmax answer length: {task.max_answer_len} characters\n"
                f"alphabet: {len(task.alphabet())} characters"
            )
        )
        table = Table(title=f"{len(examples)} {split} examples (seed {seed})")
        table.add_column("prompt")
        table.add_column("target")
        if task.kind == "choice":
            table.add_column("choices")
        for ex in examples:
            row = [Text(_visible(ex.prompt)), Text(_visible(ex.target))]
            if task.kind == "choice":
                row.append(Text(" | ".join(_visible(c) for c in ex.choices or ())))
            table.add_row(*row)
        console.print(table)

    @tasks_app.command("export")
    def export(
        name: str = typer.Argument(..., help="Task name (see `emergence tasks list`)."),
        lm_eval: str = typer.Option(..., "--lm-eval", help="Directory for the lm-evaluation-harness task."),
        option: list[str] = typer.Option([], "--option", "-o", help="Task option key=value (repeatable)."),
        n: int = typer.Option(200, "-n", "--n", min=1, help="Test examples to export."),
        seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    ) -> None:
        """Write an lm-evaluation-harness task YAML plus local JSONL data for one of our tasks."""
        from emergence.tasks import make_task
        from emergence.tasks.catalog import parse_option_args
        from emergence.tasks.lmeval import export_lm_eval_task

        task = make_task(name, **parse_option_args(option))
        for path in export_lm_eval_task(task, lm_eval, n_test=n, seed=seed):
            typer.echo(f"wrote {path}")
        typer.echo(
            f"run: lm_eval --model hf --model_args pretrained=MODEL_DIR,add_bos_token=True "
            f"--include_path {lm_eval} --tasks {path.stem}"
        )
