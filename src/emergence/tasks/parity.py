"""Parity of a bit string: a choice task that is hard for gradient descent and flips sharply when learned.

Parity depends on every bit at once, so no partial solution scores above chance: a classic source of abrupt,
"emergent" learning curves (Barak et al. 2022 on sparse parity and hidden progress).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from emergence.tasks.base import TASKS, BaseTask, Example, HashSplitOptions, Split, opt

ANSWERS: dict[str, tuple[str, str]] = {"bit": ("0", "1"), "word": ("even", "odd")}


@dataclass(frozen=True)
class ParityOptions(HashSplitOptions):
    """Options of the parity task."""

    length: int = opt(10, "number of bits")
    answer: Literal["bit", "word"] = opt("bit", "choices '0'/'1' ('bit') or 'even'/'odd' ('word')")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.length <= 64:
            raise ValueError(f"length: must be between 1 and 64, got {self.length}")


@TASKS.register("parity")
class ParityTask(BaseTask):
    """Parity of a random bit string: `parity:0110=` → `0` (an even number of ones).

    Encoding: prompt `parity:` + the bits + `=`; choices `("0", "1")` with `answer="bit"` (target `1` when the
    number of ones is odd) or `("even", "odd")` with `answer="word"`. Bit strings are uniform over all
    2^length; the bit string is the canonical item for the split. Chance accuracy is 1/2.
    """

    name = "parity"
    kind = "choice"
    description = "parity of a random bit string (choice: 0/1 or even/odd)"
    Options = ParityOptions
    opts: ParityOptions

    @property
    def choices(self) -> tuple[str, str]:
        """(even answer, odd answer)."""
        return ANSWERS[self.opts.answer]

    @property
    def max_answer_len(self) -> int:
        """The longest choice."""
        return max(len(c) for c in self.choices)

    def _alphabet(self) -> Iterable[str]:
        return "01parity:=" + "".join(self.choices)

    def _bits(self, i: int) -> str:
        return format(i, f"0{self.opts.length}b")

    def encode(self, bits: str) -> Example:
        """The example for one bit string."""
        ones = bits.count("1")
        return Example(
            f"parity:{bits}=", self.choices[ones % 2], self.choices, meta={"bits": bits, "ones": ones}
        )

    def _examples(self, split: Split, n: int | None, seed: int) -> list[Example]:
        idx = self._hashed_indices(2**self.opts.length, self._bits, split, n, seed)
        return [self.encode(self._bits(i)) for i in idx]
