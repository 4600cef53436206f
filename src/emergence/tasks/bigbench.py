"""BIG-bench JSON tasks (Srivastava et al. 2022): the `task.json` format of the benchmark's JSON tasks.

    {
      "name": "...", "description": "...",
      "task_prefix": "",                       once, before the first shot
      "example_input_prefix": "\\nQ: ",        before every input
      "example_output_prefix": "\\nA: ",       between input and answer
      "choice_prefix": "\\n  choice: ",        before every listed choice
      "append_choices_to_input": true,         list the choices in the prompt (choice tasks)
      "few_shot_example_separator": "\\n",     between shots
      "examples": [{"input": "...", "target": "..." | [...]} | {"input": "...", "target_scores": {...}}]
    }

Defaults are BIG-bench's. Other top-level fields (keywords, metrics, canary…) are ignored. Records are
validated like JSONL records, with errors naming `task.json: examples[6]`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emergence.errors import UserError
from emergence.io import read_json
from emergence.tasks.base import TASKS, Example, HashSplitOptions, Kind, opt
from emergence.tasks.jsonl import FileTask, Record, parse_record

FORMAT_DEFAULTS: dict[str, Any] = {
    "task_prefix": "",
    "example_input_prefix": "\nQ: ",
    "example_output_prefix": "\nA: ",
    "choice_prefix": "\n  choice: ",
    "append_choices_to_input": True,
    "few_shot_example_separator": "\n",
}


@dataclass(frozen=True)
class BigBenchOptions(HashSplitOptions):
    """Options of a BIG-bench JSON task."""

    path: str = opt("", "the BIG-bench task.json file (required)")
    name: str | None = opt(None, 'task name in results (default: the file\'s "name", else its file name)')

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise ValueError("path: required (the BIG-bench task.json file)")


@TASKS.register("bigbench")
class BigBenchTask(FileTask):
    """A BIG-bench JSON task: prompts laid out with the file's own prefixes.

    Encoding: prompt = `example_input_prefix + input + output prefix`, e.g. `\\nQ: What is 2+2?\\nA: `, target
    the answer (for a list of targets the first; all are kept in `meta["targets"]`). For `target_scores`
    records with `append_choices_to_input`, the choices are listed after the input, each after
    `choice_prefix`, in an order fixed by a hash of the input (BIG-bench shuffles them too, so the answer's
    position carries no signal); the target is the first choice with the highest score. `task_prefix` goes
    once before a few-shot context and `few_shot_example_separator` between shots (`fewshot_prompt`). Splits:
    a `"split"` field on every example, or a stable hash of the input with `test_fraction`.
    """

    name = "bigbench"
    kind = "generate"
    description = "BIG-bench JSON task (task.json with examples and prompt prefixes)"
    Options = BigBenchOptions

    def _load(self, path: Path) -> list[Record]:
        data = read_json(path)
        if not isinstance(data, dict):
            raise UserError(f'{path}: expected a JSON object with "examples", got {type(data).__name__}')
        if "examples" not in data:
            hint = (
                " (a task with subtasks: point path at one subtask's task.json)" if "subtasks" in data else ""
            )
            raise UserError(f'{path}: missing "examples"{hint}')
        fmt = dict(FORMAT_DEFAULTS)
        for key, default in FORMAT_DEFAULTS.items():
            if key in data:
                value = data[key]
                if type(value) is not type(default):
                    raise UserError(f'{path}: "{key}" must be a {type(default).__name__}, got {value!r}')
                fmt[key] = value
        self.format = fmt
        self.task_prefix = fmt["task_prefix"]
        self.fewshot_separator = fmt["few_shot_example_separator"]
        if self.opts.name is None and isinstance(data.get("name"), str) and data["name"]:
            self._file_name = data["name"]
        examples = data["examples"]
        if not isinstance(examples, list) or not examples:
            raise UserError(f'{path}: "examples" must be a non-empty list')
        records: list[Record] = []
        expect: Kind | None = None
        for i, obj in enumerate(examples):
            record = parse_record(obj, f"{path}: examples[{i}]", expect)
            expect = record.kind
            records.append(record)
        return records

    def to_example(self, r: Record) -> Example:
        """Lay one record out with the file's prefixes."""
        ex = super().to_example(r)
        fmt = self.format
        prompt = fmt["example_input_prefix"] + r.input
        choices = ex.choices
        if choices is not None:
            order = list(choices)
            random.Random(f"bigbench-choices|{r.input}").shuffle(order)
            choices = tuple(order)
            if fmt["append_choices_to_input"]:
                prompt += "".join(fmt["choice_prefix"] + c for c in choices)
        prompt += fmt["example_output_prefix"]
        return Example(prompt, ex.target, choices, meta={**ex.meta, "input": r.input})
