"""Classification (choice) tasks: which of two numbers is larger, and the majority bit of a string.

Both are scored by comparing the log-likelihoods of the choices, so they have a chance level (1/2) and give
the evaluator multiple-choice metrics (accuracy, Brier score) to set against the generation tasks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from emergence.tasks.base import TASKS, BaseTask, Example, HashSplitOptions, Split, opt


@dataclass(frozen=True)
class LargerOptions(HashSplitOptions):
    """Options of the larger-number task."""

    digits: int = opt(2, "numbers are drawn from [0, 10^digits)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.digits <= 18:
            raise ValueError(f"digits: must be between 1 and 18, got {self.digits}")


@TASKS.register("larger")
class LargerTask(BaseTask):
    """Which of two different numbers is larger: `larger:37,82=` → `82`, choices `("37", "82")`.

    Encoding: prompt `larger:` + a + `,` + b + `=` with a ≠ b in decimal without padding; the choices are the
    two numbers in prompt order and the target is the larger one, so the answer position is balanced. The
    unordered pair {a, b} is the canonical item: (a, b) and (b, a) share a split. Chance accuracy is 1/2.
    """

    name = "larger"
    kind = "choice"
    description = "which of two numbers is larger (choice between the two numbers)"
    Options = LargerOptions
    opts: LargerOptions

    @property
    def max_answer_len(self) -> int:
        """digits characters."""
        return self.opts.digits

    def _alphabet(self) -> Iterable[str]:
        return "0123456789larger:,="

    def _pair(self, i: int) -> tuple[int, int]:
        # Index → ordered pair with a ≠ b: row a, and the column skips the diagonal.
        m = 10**self.opts.digits
        a, r = divmod(i, m - 1)
        return a, (r if r < a else r + 1)

    def _key(self, i: int) -> str:
        a, b = self._pair(i)
        return f"{min(a, b)},{max(a, b)}"

    def encode(self, a: int, b: int) -> Example:
        """The example for one ordered pair."""
        if a == b:
            raise ValueError("larger: the two numbers must differ")
        return Example(f"larger:{a},{b}=", str(max(a, b)), (str(a), str(b)), meta={"a": a, "b": b})

    def _examples(self, split: Split, n: int | None, seed: int) -> list[Example]:
        m = 10**self.opts.digits
        idx = self._hashed_indices(m * (m - 1), self._key, split, n, seed)
        return [self.encode(*self._pair(i)) for i in idx]


@dataclass(frozen=True)
class MajorityOptions(HashSplitOptions):
    """Options of the majority task."""

    length: int = opt(9, "number of bits (odd, so there is always a majority)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.length <= 63 or self.length % 2 == 0:
            raise ValueError(f"length: must be odd and between 1 and 63, got {self.length}")


@TASKS.register("majority")
class MajorityTask(BaseTask):
    """The majority bit of an odd-length bit string: `majority:11010=` → `1`, choices `("0", "1")`.

    Encoding: prompt `majority:` + the bits + `=`; target the bit that occurs more often. Bit strings are
    uniform over all 2^length and are the canonical item for the split. Chance accuracy is 1/2, but a model
    can beat chance from partial counts, unlike parity: a smooth contrast to parity's sharp transition.
    """

    name = "majority"
    kind = "choice"
    description = "majority bit of an odd-length bit string (choice: 0/1)"
    Options = MajorityOptions
    opts: MajorityOptions

    @property
    def max_answer_len(self) -> int:
        """One character."""
        return 1

    def _alphabet(self) -> Iterable[str]:
        return "01majority:="

    def _bits(self, i: int) -> str:
        return format(i, f"0{self.opts.length}b")

    def encode(self, bits: str) -> Example:
        """The example for one bit string."""
        ones = bits.count("1")
        target = "1" if 2 * ones > len(bits) else "0"
        return Example(f"majority:{bits}=", target, ("0", "1"), meta={"bits": bits, "ones": ones})

    def _examples(self, split: Split, n: int | None, seed: int) -> list[Example]:
        idx = self._hashed_indices(2**self.opts.length, self._bits, split, n, seed)
        return [self.encode(self._bits(i)) for i in idx]
