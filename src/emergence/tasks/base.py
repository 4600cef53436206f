"""The task contract: `Example`, the `Task` protocol, the `TASKS` registry and the split helpers.

A task turns a seed into examples. Two rules hold for every task in the lab:

- **Deterministic.** `examples(split, n, seed)` returns the same list for the same arguments on any machine
  (seeded `random.Random` with a string seed, sha256 for split assignment; never Python's salted `hash`), and
  `examples(split, n, seed)` is a prefix of `examples(split, m, seed)` for n < m.
- **Disjoint splits.** Each task names a *canonical item* for every example (an operand pair, a string, a
  JSONL record's input). Items are assigned to train or test once, independently of the seed:

      hash split:        u = sha256(salt ␀ key) / 2^256;   test  ⇔  u < test_fraction
      permutation split: a seeded permutation of the whole item table; the first train_fraction·N items train

  so a test item can never appear in training, whatever seeds the trainer and evaluator use. Asking for more
  examples than a split holds is a UserError: we never silently sample with replacement.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, get_args, runtime_checkable

from emergence.config import from_dict, to_dict
from emergence.errors import UserError
from emergence.registry import Registry, unknown_name_message

Split = Literal["train", "test"]
Kind = Literal["generate", "choice"]
SPLITS: tuple[str, ...] = get_args(Split)

# Metric names shared with the evaluator's metric registry. Generation tasks are scored on the decoded answer
# and on the answer's log-probability; choice tasks by comparing the choices' log-likelihoods.
GENERATE_METRICS: tuple[str, ...] = (
    "exact_match",
    "token_accuracy",
    "edit_distance",
    "answer_logprob",
    "prob_correct",
    "rank",
)
CHOICE_METRICS: tuple[str, ...] = (
    "accuracy",
    "accuracy_norm",
    "brier",
    "prob_correct",
    "answer_logprob",
    "rank",
)

# Item spaces up to this size are enumerated exactly (split sizes known, n checked exactly); larger spaces are
# sampled by rejection, which is only allowed while n stays well below the split's expected size.
ENUMERATE_LIMIT = 100_000


@dataclass(frozen=True)
class Example:
    """One prompt and its answer; for a choice task the target is one of `choices`."""

    prompt: str
    target: str
    choices: tuple[str, ...] | None = None
    # Extra facts about the example (operands, record line…), for analysis; not part of equality.
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # Character ranges [start, end) of the *prompt* whose tokens also count in the training loss (the target
    # and <eos> always do): a packed sequence of several (input → label) pairs scores every label, not only
    # the last. Sorted and disjoint; empty for one-answer examples. The evaluator ignores it.
    loss_spans: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not isinstance(self.target, str):
            raise ValueError("prompt and target must be strings")
        if self.choices is not None:
            if not isinstance(self.choices, tuple) or not all(isinstance(c, str) for c in self.choices):
                raise ValueError("choices: must be a tuple of strings")
            if len(self.choices) < 2:
                raise ValueError("choices: need at least two")
            if len(set(self.choices)) != len(self.choices):
                raise ValueError(f"choices: duplicates in {self.choices!r}")
            if self.target not in self.choices:
                raise ValueError(f"target {self.target!r} is not one of the choices {self.choices!r}")
        end = 0
        for span in self.loss_spans:
            if len(span) != 2 or not end <= span[0] < span[1] <= len(self.prompt):
                raise ValueError(
                    f"loss_spans: {span!r} is not a sorted, disjoint, non-empty range of the prompt "
                    f"(length {len(self.prompt)})"
                )
            end = span[1]


@runtime_checkable
class Task(Protocol):
    """What the trainer and the evaluator need from a task (see docs/architecture.md)."""

    name: str
    kind: Kind
    metrics: tuple[str, ...]
    # Few-shot layout: `task_prefix + shot_1 + sep + shot_2 + sep + … + query.prompt` (see `fewshot_prompt`).
    task_prefix: str
    fewshot_separator: str

    @property
    def max_answer_len(self) -> int: ...
    @property
    def options(self) -> dict[str, Any]: ...
    def alphabet(self) -> str: ...
    def examples(self, split: Split, n: int | None = None, seed: int = 0) -> list[Example]: ...


def opt(default: Any, help: str) -> Any:
    """A task option with a default and a one-line description (shown by `emergence tasks list`)."""
    return field(default=default, metadata={"help": help})


def option_help(options_cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, help) for every option of a task's options dataclass."""
    out = []
    for f in dataclasses.fields(options_cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        out.append((f.name, default, str(f.metadata.get("help", ""))))
    return out


class BaseTask(ABC):
    """Shared machinery for tasks: options from a frozen dataclass, alphabet, few-shot layout, split checks.

    Subclasses set the class variables, define a frozen `Options` dataclass (each field made with `opt`), and
    implement `_examples` and `_alphabet`.
    """

    name: ClassVar[str]
    kind: ClassVar[Kind]
    description: ClassVar[str]
    Options: ClassVar[type]
    task_prefix: str = ""
    fewshot_separator: str = "\n"

    def __init__(self, options: Any) -> None:
        self.opts = options
        # Split members of enumerated item spaces, computed once (the options are frozen).
        self._split_cache: dict[Any, list[int]] = {}

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metric names this task supports."""
        return CHOICE_METRICS if self.kind == "choice" else GENERATE_METRICS

    @classmethod
    def from_options(cls, **options: Any) -> BaseTask:
        """Build the task; unknown option → UserError (did you mean), bad value → UserError naming it."""
        known = [f.name for f in dataclasses.fields(cls.Options)]
        for key in options:
            if key not in known:
                raise UserError(f"task {cls.name!r}: {unknown_name_message('option', key, known)}")
        return cls(from_dict(cls.Options, options, where=cls.name))

    @property
    def options(self) -> dict[str, Any]:
        """The resolved options (defaults filled in), as plain data for configs and reports."""
        return dict(to_dict(self.opts))

    @property
    @abstractmethod
    def max_answer_len(self) -> int:
        """Longest target (in characters) this task can produce."""

    @abstractmethod
    def _alphabet(self) -> Iterable[str]:
        """Every character prompts, targets and choices can contain."""

    @abstractmethod
    def _examples(self, split: Split, n: int | None, seed: int) -> list[Example]:
        """Generate examples; arguments are already validated."""

    def _hashed_indices(
        self, size: int, key_of: Callable[[int], str], split: Split, n: int | None, seed: int
    ) -> list[int]:
        """`sample_hashed` over this task's item space (name as salt; its test_fraction and cache)."""
        return sample_hashed(
            size,
            key_of,
            task=self.name,
            salt=self.name,
            split=split,
            n=n,
            seed=seed,
            test_fraction=self.opts.test_fraction,
            cache=self._split_cache,
        )

    def alphabet(self) -> str:
        """Sorted characters this task's text can contain (few-shot layout included)."""
        chars = set("".join(self._alphabet())) | set(self.task_prefix) | set(self.fewshot_separator)
        return "".join(sorted(chars))

    def examples(self, split: Split, n: int | None = None, seed: int = 0) -> list[Example]:
        """`n` examples of `split` (all of a finite split when `n` is None), deterministic in `seed`."""
        check_split_args(self.name, split, n, seed)
        return self._examples(split, n, seed)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"


@dataclass(frozen=True)
class HashSplitOptions:
    """Options shared by tasks whose items are assigned to splits by hash."""

    test_fraction: float = opt(0.2, "share of items assigned to the test split (by a stable sha256 hash)")

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction: must be strictly between 0 and 1, got {self.test_fraction}")


TASKS: Registry[type[BaseTask]] = Registry("task")


def make_task(name: str, /, **options: Any) -> BaseTask:
    """Build a registered task by name (`make_task("addition", digits=3)`)."""
    import emergence.tasks  # noqa: F401  (registers the built-in tasks)

    return TASKS.get(name).from_options(**options)


# ---------------------------------------------------------------------------------------------- split helpers


def check_split_args(task: str, split: Any, n: Any, seed: Any) -> None:
    """Validate the arguments of `examples` with messages naming the task."""
    if split not in SPLITS:
        raise UserError(f"task {task!r}: {unknown_name_message('split', split, SPLITS)}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise UserError(f"task {task!r}: n must be a non-negative integer or None, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"task {task!r}: seed must be an integer, got {seed!r}")


def stable_unit(key: str, salt: str) -> float:
    """A number in [0, 1) fixed by (salt, key): the same on every machine and Python version."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_split(key: str, salt: str, test_fraction: float) -> Split:
    """Assign a canonical item to a split by hash: test iff its stable unit number < `test_fraction`."""
    return "test" if stable_unit(key, salt) < test_fraction else "train"


def example_hash(ex: Example) -> str:
    """sha256 of an example's text (prompt, target, choices): identical examples hash identically."""
    choices = "\x1f".join(ex.choices) if ex.choices is not None else ""
    return hashlib.sha256(f"{ex.prompt}\x00{ex.target}\x00{choices}".encode()).hexdigest()


def split_rng(salt: str, split: Split, seed: int) -> random.Random:
    """The RNG for one (task, split, seed): string seeds hash with sha512, so this is stable everywhere."""
    return random.Random(f"{salt}|{split}|{seed}")


def take(items: Sequence[Any], n: int | None, rng: random.Random, task: str, split: Split) -> list[Any]:
    """A seeded shuffle of `items`, cut to `n`; more than the split holds is a UserError (no replacement)."""
    if n is not None and n > len(items):
        raise UserError(
            f"task {task!r}: asked for {n} {split} examples but the {split} split holds only {len(items)}; "
            "lower n or change the split options"
        )
    order = list(items)
    rng.shuffle(order)
    return order if n is None else order[:n]


def sample_hashed(
    size: int,
    key_of: Callable[[int], str],
    *,
    task: str,
    salt: str,
    split: Split,
    n: int | None,
    seed: int,
    test_fraction: float,
    enumerate_limit: int = ENUMERATE_LIMIT,
    cache: dict[Any, list[int]] | None = None,
) -> list[int]:
    """Indices into an item space of `size` items whose keys hash into `split`, without replacement.

    Small spaces are enumerated (exact split sizes; `n=None` returns the whole split, shuffled; `cache` keeps
    the members for the next call). Large spaces are sampled by rejection, which needs an explicit `n` no
    larger than half the split's expected size.
    """
    rng = split_rng(salt, split, seed)
    if size <= enumerate_limit:
        members = cache.get((salt, split)) if cache is not None else None
        if members is None:
            members = [i for i in range(size) if hash_split(key_of(i), salt, test_fraction) == split]
            if cache is not None:  # hashing the whole space again on every call would dominate small runs
                cache[(salt, split)] = members
        return take(members, n, rng, task, split)
    share = test_fraction if split == "test" else 1.0 - test_fraction
    # Item spaces of random sequences can pass float's range (10^308); their split is inexhaustible anyway.
    expected = size * share if size.bit_length() < 1000 else math.inf
    if n is None:
        raise UserError(
            f"task {task!r}: the {split} split has about {expected:.3g} items; pass an explicit n"
        )
    if n > expected / 2:
        raise UserError(
            f"task {task!r}: asked for {n} {split} examples but the {split} split holds only about "
            f"{expected:.3g}; sampling without replacement needs n ≤ {int(expected / 2)}"
        )
    chosen: list[int] = []
    seen: set[int] = set()
    max_draws = int(20 * n / share) + 1000  # n ≤ half the split, so ≥ 1/2 of the in-split draws are new
    for _ in range(max_draws):
        if len(chosen) == n:
            break
        i = rng.randrange(size)
        if i in seen:
            continue
        seen.add(i)
        if hash_split(key_of(i), salt, test_fraction) == split:
            chosen.append(i)
    if len(chosen) < n:  # astronomically unlikely with the bound above; say so rather than loop forever
        raise UserError(f"task {task!r}: could not draw {n} distinct {split} examples; lower n")
    return chosen


def permutation_split(size: int, train_fraction: float, split_seed: int, salt: str) -> dict[str, list[int]]:
    """Exact split of a small item table: a seeded permutation, the first round(train_fraction·size) train."""
    order = list(range(size))
    random.Random(f"{salt}|split|{split_seed}").shuffle(order)
    n_train = round(train_fraction * size)
    return {"train": order[:n_train], "test": order[n_train:]}


def fewshot_prompt(task: Task, shots: Sequence[Example], query: Example) -> str:
    """The few-shot context: task prefix, each shot's prompt+target, separated, then the query."""
    parts = [s.prompt + s.target for s in shots] + [query.prompt]
    return task.task_prefix + task.fewshot_separator.join(parts)


def symbol_table(k: int) -> str:
    """`k` distinct one-character symbols: a–z, A–Z, 0–9, then CJK ideographs (one code point each)."""
    base = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    if k <= len(base):
        return base[:k]
    # U+4E00.. is a long run of assigned, printable, single-code-point characters: one token per symbol.
    return base + "".join(chr(0x4E00 + i) for i in range(k - len(base)))
