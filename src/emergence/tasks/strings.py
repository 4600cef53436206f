"""String-manipulation generators: copy, reverse and sort a random string.

Three algorithmic skills of increasing difficulty for a small transformer: copying needs attention to a fixed
offset, reversing to a position that moves backwards, sorting to content (counting). The string itself is the
canonical item: a string is in the test split of a task for every seed, or in none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from emergence.tasks.base import TASKS, BaseTask, Example, HashSplitOptions, Split, opt

RESERVED = ":=\n"  # delimiters of the prompt layout and the few-shot separator
MAX_LENGTH = 64


@dataclass(frozen=True)
class StringOptions(HashSplitOptions):
    """Options of the copy, reverse and sort tasks."""

    length: int = opt(6, "length of the random string (the longest, when min_length is set)")
    min_length: int | None = opt(
        None, "shortest length; lengths in [min_length, length] (None: fixed length)"
    )
    alphabet: str = opt("abcdefgh", "characters the strings are drawn from (sort follows this order)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.length <= MAX_LENGTH:
            raise ValueError(f"length: must be between 1 and {MAX_LENGTH}, got {self.length}")
        if self.min_length is not None and not 1 <= self.min_length <= self.length:
            raise ValueError(
                f"min_length: must be between 1 and length ({self.length}), got {self.min_length}"
            )
        if len(self.alphabet) < 2:
            raise ValueError(f"alphabet: needs at least two characters, got {self.alphabet!r}")
        if len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError(f"alphabet: repeated characters in {self.alphabet!r}")
        bad = sorted(set(self.alphabet) & set(RESERVED))
        if bad:
            raise ValueError(f"alphabet: may not contain the delimiters {bad!r}")


class _StringTask(BaseTask):
    """Shared generator: prompt `OP:s=`, target `f(s)`; strings uniform over all allowed strings."""

    kind = "generate"
    Options = StringOptions
    opts: StringOptions
    op: ClassVar[str]

    def transform(self, s: str) -> str:
        """The answer for string `s`."""
        raise NotImplementedError

    @property
    def _lengths(self) -> range:
        o = self.opts
        return range(o.min_length if o.min_length is not None else o.length, o.length + 1)

    @property
    def max_answer_len(self) -> int:
        """The longest string."""
        return self.opts.length

    def _alphabet(self) -> Iterable[str]:
        return self.opts.alphabet + self.op + ":="

    def _string(self, i: int) -> str:
        # Index → string: lengths in increasing order, then base-k digits within a length.
        alphabet = self.opts.alphabet
        k = len(alphabet)
        for length in self._lengths:
            count = k**length
            if i < count:
                chars = []
                for _ in range(length):
                    i, d = divmod(i, k)
                    chars.append(alphabet[d])
                return "".join(chars)
            i -= count
        raise IndexError(i)

    def encode(self, s: str) -> Example:
        """The example for one string."""
        return Example(f"{self.op}:{s}=", self.transform(s), meta={"string": s, "length": len(s)})

    def _examples(self, split: Split, n: int | None, seed: int) -> list[Example]:
        k = len(self.opts.alphabet)
        size = sum(k**length for length in self._lengths)
        idx = self._hashed_indices(size, self._string, split, n, seed)
        return [self.encode(self._string(i)) for i in idx]


@TASKS.register("copy")
class CopyTask(_StringTask):
    """Copy a random string: `copy:s=` → `s`.

    Encoding: prompt `copy:` + the string + `=`, target the same string (`copy:cabd=` → `cabd`). Strings are
    uniform over every string of the allowed lengths over `alphabet` (so longer lengths dominate a mix).
    """

    name = "copy"
    description = "copy a random string"
    op = "copy"

    def transform(self, s: str) -> str:
        """The string itself."""
        return s


@TASKS.register("reverse")
class ReverseTask(_StringTask):
    """Reverse a random string: `reverse:s=` → `s` backwards.

    Encoding: prompt `reverse:` + the string + `=`, target the string reversed (`reverse:cabd=` → `dbac`).
    Strings are uniform over every string of the allowed lengths over `alphabet`.
    """

    name = "reverse"
    description = "reverse a random string"
    op = "reverse"

    def transform(self, s: str) -> str:
        """The string backwards."""
        return s[::-1]


@TASKS.register("sort")
class SortTask(_StringTask):
    """Sort the characters of a random string: `sort:s=` → the characters in alphabet order.

    Encoding: prompt `sort:` + the string + `=`, target its characters sorted by their position in the
    `alphabet` option, repeats kept (`sort:cabca=` → `aabcc` with alphabet `abc…`). Strings are uniform over
    every string of the allowed lengths over `alphabet`.
    """

    name = "sort"
    description = "sort the characters of a random string"
    op = "sort"

    def transform(self, s: str) -> str:
        """The characters in alphabet order."""
        rank = {c: i for i, c in enumerate(self.opts.alphabet)}
        return "".join(sorted(s, key=rank.__getitem__))
