"""User tasks from JSON lines: one record per line, validated on load with `file:line` errors.

    {"input": "2+2=", "target": "4"}                                  generation record
    {"input": "Is 7 prime? ", "target_scores": {"yes": 1, "no": 0}}   choice record (target = argmax)

Optional fields: `"split": "train" | "test"` (explicit split; then every record needs one) and anything else,
kept in the example's `meta`. `target` may also be a list of acceptable answers (the first is the target).
Without explicit splits, records are assigned by a stable hash of their input with `test_fraction`, so the
same input always lands in the same split and the splits are disjoint.

The record validation and the split logic are shared with the BIG-bench JSON loader (`bigbench.py`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emergence.errors import UserError
from emergence.io import sha256_file
from emergence.tasks.base import (
    SPLITS,
    TASKS,
    BaseTask,
    Example,
    HashSplitOptions,
    Kind,
    Split,
    hash_split,
    opt,
    split_rng,
    take,
)

SPLIT_SALT = "user-task"  # one salt for every file: renaming a task never moves an item between splits


@dataclass(frozen=True)
class Record:
    """One validated user record."""

    where: str  # "tasks.jsonl:7" or "task.json: examples[6]", for messages
    input: str
    targets: tuple[str, ...]  # generation: acceptable answers, the first is the target
    target_scores: dict[str, float] | None  # choice: every choice with its score
    split: Split | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> Kind:
        """'choice' for target_scores records, else 'generate'."""
        return "choice" if self.target_scores is not None else "generate"

    @property
    def target(self) -> str:
        """The answer: the first target, or the first choice with the highest score."""
        if self.target_scores is None:
            return self.targets[0]
        best = max(self.target_scores.values())
        return next(c for c, s in self.target_scores.items() if s == best)


def parse_record(obj: Any, where: str, expect: Kind | None = None) -> Record:
    """Validate one record (`expect` is the kind of the file's first record); errors start with `where`."""
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "input" not in obj:
        raise UserError(f'{where}: missing "input"')
    text = obj["input"]
    if not isinstance(text, str):
        raise UserError(f'{where}: "input" must be a string, got {type(text).__name__}')
    kind: Kind | None = "choice" if "target_scores" in obj else ("generate" if "target" in obj else None)
    if kind is None:
        if expect == "choice":
            raise UserError(f'{where}: missing "target_scores"')
        if expect == "generate":
            raise UserError(f'{where}: missing "target"')
        raise UserError(f'{where}: missing "target" (or "target_scores" for a choice record)')
    if expect is not None and kind != expect:
        raise UserError(
            f'{where}: a {kind} record in a file of {expect} records (do not mix "target" and '
            '"target_scores" records)'
        )
    targets: tuple[str, ...] = ()
    scores: dict[str, float] | None = None
    if kind == "generate":
        raw = obj["target"]
        items = raw if isinstance(raw, list) else [raw]
        if not items or not all(isinstance(t, str) and t for t in items):
            raise UserError(f'{where}: "target" must be a non-empty string or a list of them, got {raw!r}')
        targets = tuple(items)
    else:
        raw = obj["target_scores"]
        if not isinstance(raw, dict) or len(raw) < 2:
            raise UserError(f'{where}: "target_scores" must map at least two choices to scores, got {raw!r}')
        for choice, score in raw.items():
            if not choice:
                raise UserError(f'{where}: "target_scores" has an empty choice')
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise UserError(f"{where}: score of choice {choice!r} must be a number, got {score!r}")
        if len(set(raw.values())) == 1:
            raise UserError(f'{where}: all "target_scores" are equal, so there is no correct choice')
        scores = {str(c): float(s) for c, s in raw.items()}
    split = obj.get("split")
    if split is not None and split not in SPLITS:
        raise UserError(f'{where}: "split" must be "train" or "test", got {split!r}')
    extra = {k: v for k, v in obj.items() if k not in ("input", "target", "target_scores", "split")}
    return Record(where, text, targets, scores, split, extra)


def assign_splits(records: list[Record], test_fraction: float, where: str) -> dict[str, list[Record]]:
    """Explicit `"split"` fields when present (then on every record), else a stable hash of the input."""
    if not records:
        raise UserError(f"{where}: no records")
    explicit = [r for r in records if r.split is not None]
    if explicit and len(explicit) != len(records):
        first_missing = next(r for r in records if r.split is None)
        raise UserError(
            f'{first_missing.where}: missing "split" (other records have one: give every record a split, '
            "or none and use test_fraction)"
        )
    out: dict[str, list[Record]] = {"train": [], "test": []}
    if explicit:
        seen: dict[str, Record] = {}
        for r in records:
            assert r.split is not None
            other = seen.setdefault(r.input, r)
            if other.split != r.split:
                raise UserError(
                    f"{r.where}: the same input is in the {other.split} split at {other.where}; "
                    "train and test must not share inputs"
                )
            out[r.split].append(r)
    else:
        for r in records:
            out[hash_split(r.input, SPLIT_SALT, test_fraction)].append(r)
    return out


@dataclass(frozen=True)
class JsonlOptions(HashSplitOptions):
    """Options of a JSONL user task."""

    path: str = opt("", "the .jsonl file (required)")
    name: str | None = opt(None, "task name in results (default: the file name without extension)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise ValueError("path: required (the JSONL file of the task)")


class FileTask(BaseTask):
    """A task backed by validated records: examples are fixed, splits fixed at load time."""

    opts: Any
    _file_name: str | None = None  # a name the file gives itself (BIG-bench "name")

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        path = Path(options.path)
        if not path.is_file():
            raise UserError(f"{self.name}: file not found: {path}")
        self.path = path
        self.source_sha256 = sha256_file(path)  # recorded by reports: which version of the file was used
        records = self._load(path)
        self.name = options.name or self._file_name or path.stem
        self.kind = records[0].kind  # type: ignore[misc]  (per instance: the file decides)
        self._splits = {
            k: [self.to_example(r) for r in rs]
            for k, rs in assign_splits(records, options.test_fraction, str(path)).items()
        }

    def _load(self, path: Path) -> list[Record]:
        raise NotImplementedError

    def to_example(self, r: Record) -> Example:
        """The example of one record."""
        meta = {"source": r.where, **r.extra}
        if r.target_scores is None:
            if len(r.targets) > 1:
                meta["targets"] = list(r.targets)
            return Example(r.input, r.target, meta=meta)
        meta["target_scores"] = dict(r.target_scores)
        return Example(r.input, r.target, tuple(r.target_scores), meta=meta)

    @property
    def max_answer_len(self) -> int:
        """The longest target or choice."""
        lengths = [len(c) for exs in self._splits.values() for e in exs for c in (e.choices or (e.target,))]
        return max(lengths, default=0)

    def _alphabet(self) -> Iterable[str]:
        for exs in self._splits.values():
            for e in exs:
                yield e.prompt + e.target + "".join(e.choices or ())
                yield "".join(e.meta.get("targets", ()))

    def split_sizes(self) -> dict[str, int]:
        """Number of examples in each split."""
        return {k: len(v) for k, v in self._splits.items()}

    def _examples(self, split: Split, n: int | None, seed: int) -> list[Example]:
        rng: random.Random = split_rng(self.name, split, seed)
        return take(self._splits[split], n, rng, self.name, split)


@TASKS.register("jsonl")
class JsonlTask(FileTask):
    """A user task from a JSON-lines file of `{"input", "target"}` or `{"input", "target_scores"}` records.

    Encoding: the prompt is `input` verbatim and the target is `target` verbatim (put your own delimiter at
    the end of the input, e.g. `"input": "3+4="`). Choice records score every key of `target_scores`; the
    target is the first choice with the highest score. Blank lines are skipped; every other line must be a
    record, and errors name the file and line (`tasks.jsonl:7: missing "target"`).
    """

    name = "jsonl"
    kind = "generate"
    description = "user task from a JSONL file of input/target (or target_scores) records"
    Options = JsonlOptions

    def _load(self, path: Path) -> list[Record]:
        records: list[Record] = []
        expect: Kind | None = None
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: malformed JSON: {e.msg} (column {e.colno})") from None
            record = parse_record(obj, where, expect)
            expect = record.kind
            records.append(record)
        if not records:
            raise UserError(f"{path}: no records")
        return records


def load_jsonl_task(path: str | Path, **options: Any) -> JsonlTask:
    """Load a JSONL user task (`options`: test_fraction, name)."""
    task = JsonlTask.from_options(path=str(path), **options)
    assert isinstance(task, JsonlTask)
    return task
