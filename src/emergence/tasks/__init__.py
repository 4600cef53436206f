"""Tasks: the `Task` contract, the `TASKS` registry and the built-in generators and loaders.

Importing this package registers every built-in task; `make_task(name, **options)` builds one.
"""

from __future__ import annotations

from emergence.tasks import arithmetic
from emergence.tasks.base import (
    CHOICE_METRICS,
    GENERATE_METRICS,
    TASKS,
    BaseTask,
    Example,
    Split,
    Task,
    example_hash,
    fewshot_prompt,
    hash_split,
    make_task,
)

__all__ = [
    "CHOICE_METRICS",
    "GENERATE_METRICS",
    "TASKS",
    "BaseTask",
    "Example",
    "Split",
    "Task",
    "arithmetic",
    "example_hash",
    "fewshot_prompt",
    "hash_split",
    "make_task",
]
