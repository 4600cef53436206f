"""Repeated random sequences: the task on which induction heads form (Olsson et al. 2022).

The second copy of a random sequence is predictable only in context: after seeing `r_i` again, the model must
find its earlier occurrence and copy the token that followed it. A model without an induction head does no
better than chance on the repeat; one with it is near perfect, and the switch happens abruptly in training.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from emergence.tasks.base import (
    TASKS,
    BaseTask,
    Example,
    HashSplitOptions,
    Split,
    opt,
    symbol_table,
)

MAX_SYMBOLS = 1000


@dataclass(frozen=True)
class InductionOptions(HashSplitOptions):
    """Options of the induction task."""

    length: int = opt(16, "T, tokens in the random sequence (the answer repeats all T)")
    vocab: int = opt(26, "number of distinct symbols (a–z, A–Z, 0–9, then CJK ideographs; one token each)")
    distinct: bool = opt(False, "draw the T symbols without repetition, so every next token is unambiguous")
    separator: str = opt("|", "character between the two copies ('' for the plain [r r] layout)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 2 <= self.vocab <= MAX_SYMBOLS:
            raise ValueError(f"vocab: must be between 2 and {MAX_SYMBOLS}, got {self.vocab}")
        if not 1 <= self.length <= 256:
            raise ValueError(f"length: must be between 1 and 256, got {self.length}")
        if self.distinct and self.length > self.vocab:
            raise ValueError(
                f"length: {self.length} distinct symbols need vocab ≥ length (vocab={self.vocab})"
            )
        if len(self.separator) > 1:
            raise ValueError(f"separator: must be one character or empty, got {self.separator!r}")
        if self.separator and self.separator in symbol_table(self.vocab) + "\n":
            raise ValueError(f"separator: {self.separator!r} is one of the sequence symbols")


@TASKS.register("induction")
class InductionTask(BaseTask):
    """Repeat a random sequence: prompt `r_1…r_T|`, target `r_1…r_T`.

    Encoding: T symbols drawn uniformly (with repetition unless `distinct=True`) from the first `vocab`
    symbols of `a`…`z`, `A`…`Z`, `0`…`9`, then CJK ideographs from U+4E00 — one character, hence one
    char-tokenizer token, each. The prompt is the first copy followed by `separator`; the target is the second
    copy (`kqzkb|` → `kqzkb`). With the trainer's `<bos>` the full sequence is `[<bos>, r_1..r_T, |,
    r_1..r_T]`: an induction head at query position T+1+i attends to key position i+1 (offset −T; offset
    −(T−1) with `separator=""`, Olsson et al.'s layout). The sequence is the canonical item for the split.
    """

    name = "induction"
    kind = "generate"
    description = "repeat a random token sequence (induction heads)"
    Options = InductionOptions
    opts: InductionOptions

    @property
    def symbols(self) -> str:
        """The `vocab` symbols sequences are drawn from."""
        return symbol_table(self.opts.vocab)

    @property
    def max_answer_len(self) -> int:
        """T characters."""
        return self.opts.length

    def _alphabet(self) -> Iterable[str]:
        return self.symbols + self.opts.separator

    def _space_size(self) -> int:
        k, t = self.opts.vocab, self.opts.length
        if not self.opts.distinct:
            return k**t
        size = 1
        for j in range(t):
            size *= k - j
        return size

    def _sequence(self, i: int) -> str:
        # Index → sequence: base-k digits, or (distinct) a mixed-radix unranking of partial permutations.
        symbols = list(self.symbols)
        out = []
        for _ in range(self.opts.length):
            i, d = divmod(i, len(symbols))
            out.append(symbols.pop(d) if self.opts.distinct else symbols[d])
        return "".join(out)

    def encode(self, seq: str) -> Example:
        """The example for one random sequence."""
        return Example(seq + self.opts.separator, seq, meta={"sequence": seq})

    def _examples(self, split: Split, n: int | None, seed: int) -> list[Example]:
        idx = self._hashed_indices(self._space_size(), self._sequence, split, n, seed)
        return [self.encode(self._sequence(i)) for i in idx]
