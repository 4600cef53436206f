"""Repeated random sequences: the task on which induction heads form (Olsson et al. 2022).

The second copy of a random sequence is predictable only in context: after seeing `r_i` again, the model must
find its earlier occurrence and copy the token that followed it. A model without an induction head does no
better than chance on the repeat; one with it is near perfect, and the switch happens abruptly in training.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

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
    min_length: int | None = opt(
        None, "none: every sequence has `length` tokens; else T uniform in [min_length, length] per sequence"
    )
    vocab: int = opt(26, "number of distinct symbols (a–z, A–Z, 0–9, then CJK ideographs; one token each)")
    distinct: bool = opt(False, "draw the T symbols without repetition, so every next token is unambiguous")
    separator: str = opt("|", "character between the two copies ('' for the plain [r r] layout)")
    repeats: int = opt(2, "copies of the sequence, joined by the separator (the prompt holds the first)")
    fill: int | None = opt(
        None, "none: `repeats` copies; else as many copies as it takes, cut to `fill` tokens in all"
    )
    layout: Literal["copies", "planted", "phrases"] = opt(
        "copies",
        "copies: the span repeated back to back (see repeats, fill); planted: `fill` tokens of uniform "
        "random symbols with the span written twice, the second copy ending the sequence and the first at a "
        "uniformly random earlier position (no periodic structure: only prefix matching finds the copy); "
        "phrases: the vocab cut into `phrases` random spans, strung together in random order to `fill` "
        "tokens (text-like: many spans, each recurring at no fixed distance)",
    )
    phrases: int = opt(4, "phrases layout: spans per sequence; together they hold each symbol exactly once")
    gap: int = opt(
        0,
        "copies layout with `fill`: up to this many uniform random symbols between consecutive copies (a "
        "uniform count per gap), so that the copies sit at no fixed period",
    )
    answer: Literal["repeat", "sequence"] = opt(
        "repeat",
        "repeat: prompt = first copy + separator, target = the repeat (trained on the repeat only); "
        "sequence: empty prompt, the whole sequence is the target (trained on every token, a language model)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 2 <= self.vocab <= MAX_SYMBOLS:
            raise ValueError(f"vocab: must be between 2 and {MAX_SYMBOLS}, got {self.vocab}")
        if not 1 <= self.length <= 256:
            raise ValueError(f"length: must be between 1 and 256, got {self.length}")
        if self.min_length is not None and not 1 <= self.min_length <= self.length:
            raise ValueError(f"min_length: must be between 1 and length={self.length}, got {self.min_length}")
        if self.distinct and self.length > self.vocab:
            raise ValueError(
                f"length: {self.length} distinct symbols need vocab ≥ length (vocab={self.vocab})"
            )
        if not 2 <= self.repeats <= 64:
            raise ValueError(f"repeats: must be between 2 and 64, got {self.repeats}")
        if (
            self.layout != "phrases"
            and self.fill is not None
            and self.fill < 2 * self.length + len(self.separator)
        ):
            raise ValueError(
                f"fill: must hold two copies ({2 * self.length + len(self.separator)}), got {self.fill}"
            )
        if self.layout == "planted":
            if self.fill is None:
                raise ValueError("fill: layout 'planted' needs the total length `fill`")
            if self.separator:
                raise ValueError(
                    f"separator: layout 'planted' has none; set separator: '' (got {self.separator!r})"
                )
            if self.repeats != 2:
                raise ValueError(
                    f"repeats: layout 'planted' writes the span twice, got repeats={self.repeats}"
                )
        if self.layout == "phrases":
            if self.fill is None or self.answer != "sequence" or self.separator:
                raise ValueError(
                    "layout: 'phrases' needs `fill`, answer: sequence and separator: '' (one text, no repeat)"
                )
            if not 2 <= self.phrases <= 64:
                raise ValueError(f"phrases: must be between 2 and 64, got {self.phrases}")
            lo = self.min_length or self.length
            if not self.phrases * lo <= self.vocab <= self.phrases * self.length:
                raise ValueError(
                    f"phrases: {self.phrases} phrases of {lo}-{self.length} symbols cannot hold exactly "
                    f"vocab={self.vocab} symbols"
                )
        if not 0 <= self.gap <= 64:
            raise ValueError(f"gap: must be between 0 and 64, got {self.gap}")
        if self.gap and (self.layout != "copies" or self.fill is None or self.separator):
            raise ValueError("gap: needs layout 'copies', `fill` and separator: ''")
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
    copy (`kqzkb|` → `kqzkb`), or with `repeats=k` the k − 1 further copies (`kqzkb|kqzkb|kqzkb` for k = 4,
    as in the repeated spans of REFERENCES §7), or with `fill=n` as many copies as fit in n tokens in all.
    With `answer="sequence"` the prompt is empty and the target
    is every copy (`kqzkb|kqzkb`), so the trainer's loss covers every token: a language model on repeated
    random spans, as Olsson et al. train their small models, which the in-context-learning score needs (its
    early tokens must be predicted too). With the trainer's `<bos>` the full sequence is
    `[<bos>, r_1..r_T, |, r_1..r_T]`: an induction head at query position T+1+i attends to key position i+1
    (offset −T; offset −(T−1) with `separator=""`, Olsson et al.'s layout). The sequence is the canonical
    item for the split.

    With `min_length`, T is uniform in [min_length, length] (item i has length min_length + i mod n_lengths),
    so the repeat sits at no fixed offset: a model with absolute positions cannot copy from "T positions
    back", only by prefix matching (an induction head). When vocab^min_length is small a short sequence can
    be drawn more than once; the split still follows the sequence, so train and test stay disjoint.

    Two layouts take the period out of the filled sequence, so that a head attending a fixed distance back
    cannot copy: `gap=g` puts 0..g random symbols between consecutive copies (`abcdXabcdabcdPQabc`), and
    `layout="planted"` writes the span only twice into `fill` random symbols, the second copy at the end
    (`xqKabcdPzabcd`). Both keep the span as the item that decides the split.
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

    def _alphabet(self) -> Iterable[str]:
        return self.symbols + self.opts.separator

    @property
    def _n_lengths(self) -> int:
        return len(self._lengths)

    def _span_space(self) -> int:
        k, t = self.opts.vocab, self.opts.length
        if not self.opts.distinct:
            return self._n_lengths * k**t
        size = 1
        for j in range(t):
            size *= k - j
        return self._n_lengths * size

    @property
    def _lengths(self) -> range:
        o = self.opts
        return range(o.min_length or o.length, o.length + 1)

    @property
    def _offset_radix(self) -> int:
        # A multiple of every span length's number of first-copy positions (fill − 2T + 1), so that one
        # uniform digit gives a uniform position whatever T is.
        return math.lcm(*(self.opts.fill - 2 * t + 1 for t in self._lengths))  # type: ignore[operator]

    @property
    def _max_spans(self) -> int:
        # Spans (copies, phrases) have ≥ min_length symbols, so `fill` holds at most this many; as many gaps
        # (each is followed by a copy) and phrase choices.
        return -(-self.opts.fill // self._lengths[0])  # type: ignore[operator]

    @functools.cached_property
    def _composition_counts(self) -> list[list[int]]:
        # counts[m][r]: ways to write r as m phrase lengths, each in [min_length, length].
        o, lo, hi = self.opts, self._lengths[0], self._lengths[-1]
        counts = [[0] * (o.vocab + 1) for _ in range(o.phrases + 1)]
        counts[0][0] = 1
        for m in range(1, o.phrases + 1):
            for r in range(o.vocab + 1):
                counts[m][r] = sum(counts[m - 1][r - n] for n in range(lo, min(hi, r) + 1))
        return counts

    def _n_compositions(self) -> int:
        return self._composition_counts[self.opts.phrases][self.opts.vocab]

    def _phrase_set_space(self) -> int:
        # A composition of vocab into M lengths × an order of the vocab symbols.
        return self._n_compositions() * math.factorial(self.opts.vocab)

    def _phrase_set(self, i: int) -> list[str]:
        """Item i's phrases: the vocab cut into M phrases (a composition unranked from the low digits), the
        symbols in an order unranked from the next digits."""
        o, counts = self.opts, self._composition_counts
        i, rank = divmod(i, self._n_compositions())
        lengths, rest = [], o.vocab
        for m in range(o.phrases, 0, -1):
            for n in self._lengths:
                c = counts[m - 1][rest - n] if n <= rest else 0
                if rank < c:
                    lengths.append(n)
                    rest -= n
                    break
                rank -= c
        symbols, order = list(self.symbols), []
        for _ in range(o.vocab):
            i, d = divmod(i, len(symbols))
            order.append(symbols.pop(d))
        bounds = list(itertools.accumulate(lengths, initial=0))
        return ["".join(order[a:b]) for a, b in itertools.pairwise(bounds)]

    def _phrases_key(self, i: int) -> str:
        return " ".join(sorted(self._phrase_set(i)))

    def _phrases_text(self, i: int, phrases: list[str]) -> str:
        """Item i of the phrases layout: random phrase choices (high digits), cut to `fill`.

        Each phrase is uniform among the M − 1 that differ from the one before it: a phrase repeated back to
        back would make a periodic stretch that a head attending a fixed distance back can copy.
        """
        high = i // self._phrase_set_space()
        high, prev = divmod(high, self.opts.phrases)
        parts, size = [phrases[prev]], len(phrases[prev])
        while size < self.opts.fill:  # type: ignore[operator]
            high, d = divmod(high, self.opts.phrases - 1)
            prev = d + (d >= prev)
            parts.append(phrases[prev])
            size += len(phrases[prev])
        return "".join(parts)[: self.opts.fill]

    def _space_size(self) -> int:
        if self.opts.layout == "phrases":
            return self._phrase_set_space() * self.opts.phrases * (self.opts.phrases - 1) ** self._max_spans
        if self.opts.layout == "copies" and self.opts.gap:
            # Span (low digits, the split key) × every gap's length × the filler symbols (≤ fill of them).
            g = self._max_spans
            n_filler = min(g * self.opts.gap, self.opts.fill)  # type: ignore[type-var]
            return self._span_space() * (self.opts.gap + 1) ** g * self.opts.vocab**n_filler
        if self.opts.layout == "copies":
            return self._span_space()
        # Planted: span (low digits, the split key) × first-copy position × filler symbols.
        n_filler = self.opts.fill - 2 * self._lengths[0]  # type: ignore[operator]
        return self._span_space() * self._offset_radix * self.opts.vocab**n_filler

    def _sequence(self, i: int) -> str:
        # Index → (length, sequence): the length interleaves (uniform over lengths), then base-k digits, or
        # (distinct) a mixed-radix unranking of partial permutations, cut to the length.
        i, extra = divmod(i, self._n_lengths)
        length = self.opts.length if self.opts.min_length is None else self.opts.min_length + extra
        symbols = list(self.symbols)
        out = []
        for _ in range(length):
            i, d = divmod(i, len(symbols))
            out.append(symbols.pop(d) if self.opts.distinct else symbols[d])
        return "".join(out)

    @property
    def max_answer_len(self) -> int:
        """The repeats after the first copy, or the whole sequence with `answer="sequence"`."""
        o = self.opts
        if o.layout in ("planted", "phrases"):
            return o.fill if o.answer == "sequence" else o.length  # type: ignore[return-value]
        if o.fill is not None:
            return o.fill - (o.answer == "repeat") * (o.min_length or o.length) - len(o.separator)
        copies = o.repeats - (o.answer == "repeat")
        return copies * o.length + (copies - 1) * len(o.separator)

    def _planted_text(self, i: int, span: str) -> str:
        """Item i of the planted layout: filler[:p] + span + filler[p:] + span, `fill` symbols in all."""
        high = i // self._span_space()
        high, digit = divmod(high, self._offset_radix)
        n_filler = self.opts.fill - 2 * len(span)  # type: ignore[operator]
        pos = digit % (n_filler + 1)
        filler = []
        for _ in range(n_filler):
            high, d = divmod(high, self.opts.vocab)
            filler.append(self.symbols[d])
        return "".join(filler[:pos]) + span + "".join(filler[pos:]) + span

    def _gapped_text(self, i: int, span: str) -> str:
        """Item i of the copies layout with gaps: span, random filler, span, … cut to `fill` symbols."""
        o = self.opts
        high = i // self._span_space()
        gaps = []
        for _ in range(self._max_spans):
            high, d = divmod(high, o.gap + 1)
            gaps.append(d)
        parts = [span]
        size = len(span)
        for g in gaps:
            if size >= o.fill:  # type: ignore[operator]
                break
            for _ in range(g):
                high, d = divmod(high, o.vocab)
                parts.append(self.symbols[d])
            parts.append(span)
            size += g + len(span)
        return "".join(parts)[: o.fill]

    def encode(self, seq: str, text: str | None = None) -> Example:
        """The example for one random span `seq`; `text`, the whole sequence, is needed for the planted
        layout and for gaps (the copies layout without gaps builds it from `seq`)."""
        o = self.opts
        if text is None:
            if o.layout == "planted" or o.gap:
                raise ValueError("the planted layout and gaps need the whole sequence text")
            n = (
                o.repeats
                if o.fill is None
                else -(-(o.fill + len(o.separator)) // (len(seq) + len(o.separator)))
            )
            text = o.separator.join([seq] * n)[: o.fill]  # fill=None keeps it whole
        if o.answer == "sequence":
            return Example("", text, meta={"sequence": seq})
        if o.layout == "planted":
            return Example(text[: -len(seq)], seq, meta={"sequence": seq})
        return Example(seq + o.separator, text[len(seq) + len(o.separator) :], meta={"sequence": seq})

    def _examples(self, split: Split, n: int | None, seed: int) -> list[Example]:
        if self.opts.layout == "phrases":
            idx = self._hashed_indices(self._space_size(), self._phrases_key, split, n, seed)
            out = []
            for i in idx:
                phrases = self._phrase_set(i)
                out.append(Example("", self._phrases_text(i, phrases), meta={"phrases": phrases}))
            return out
        idx = self._hashed_indices(self._space_size(), self._sequence, split, n, seed)
        if self.opts.layout == "planted" or self.opts.gap:
            text = self._planted_text if self.opts.layout == "planted" else self._gapped_text
            spans = [self._sequence(i) for i in idx]
            return [self.encode(seq, text(i, seq)) for i, seq in zip(idx, spans, strict=True)]
        return [self.encode(self._sequence(i)) for i in idx]
