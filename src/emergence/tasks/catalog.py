"""What `emergence tasks list/show` print, as plain data: the registered tasks, their options, a preview."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from emergence.errors import UserError
from emergence.tasks.base import TASKS, BaseTask, Example, Split, make_task, option_help


@dataclass(frozen=True)
class TaskInfo:
    """One registered task: name, kind, one-line description, options as (name, default, help)."""

    name: str
    kind: str
    description: str
    options: tuple[tuple[str, Any, str], ...]
    doc: str


def task_info(name: str) -> TaskInfo:
    """Describe one registered task (unknown name → UserError with did-you-mean)."""
    import emergence.tasks  # noqa: F401  (registers the built-in tasks)

    cls: type[BaseTask] = TASKS.get(name)
    return TaskInfo(
        name=name,
        kind=cls.kind,
        description=cls.description,
        options=tuple(option_help(cls.Options)),
        doc=inspect.cleandoc(cls.__doc__ or ""),
    )


def task_catalog() -> list[TaskInfo]:
    """Every registered task, sorted by name."""
    import emergence.tasks  # noqa: F401  (registers the built-in tasks)

    return [task_info(name) for name in TASKS.names()]


def parse_option_args(items: list[str]) -> dict[str, Any]:
    """`["digits=3", "pad=true"]` → `{"digits": 3, "pad": True}` (values are read as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"option {item!r} must look like key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        # A path such as "a.jsonl" stays a string; YAML would only change numbers, booleans and null.
        out[key] = value
    return out


def preview(
    name: str, options: dict[str, Any], split: Split, n: int, seed: int = 0
) -> tuple[BaseTask, list[Example]]:
    """Build a task and its first `n` examples of `split` (fewer when the split is smaller)."""
    task = make_task(name, **options)
    try:
        return task, task.examples(split, n, seed)
    except UserError as first:
        # A split smaller than n (a tiny JSONL file): show all of it rather than fail a preview.
        try:
            return task, task.examples(split, None, seed)
        except UserError:
            raise first from None
