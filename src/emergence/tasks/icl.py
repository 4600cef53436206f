"""In-context learning of random mappings: bursty (input → label) sequences (Chan et al. 2022, REFERENCES §9).

Each training sequence is a run of (item, label) pairs under a labelling drawn for that sequence, so a label
can only be predicted by finding an earlier pair with the same item in the sequence and copying its label:

    items   a b c … (the first `items` of a–z, A–Z)        labels  0 1 2 … (the first `labels` digits)
    train   <bos> k 2 q 0 k 2 x 3 q 0 q 0 k 2 x → 3 <eos>     the loss counts every label (Example.loss_spans)
    test    <bos> f 1 w 3 f 1 w 3 r 2 f → 1                 a k-shot prompt: k pairs, then the query

Encoding: one character (one char-tokenizer token) per item and per label, no separators; a sequence of P
pairs is the prompt `i₁l₁i₂l₂…i_P` and the target `l_P`, with `loss_spans` on l₁…l_{P−1}, so the trainer
scores every label of the packed sequence, not only the last.

- **Burstiness** (Chan et al.'s p_bursty): with probability `bursty` a sequence draws its P items from only
  `classes` items (its classes), so every class recurs and its label can be read from context; otherwise the
  items are drawn from all `items` (they rarely recur). The classes of a bursty sequence get *distinct*
  labels, so label frequency alone says nothing about which label a query has.
- **Mappings**: `pool: 0` gives every sequence a fresh random labelling: an item's label is then uniform over
  the labels in training, and nothing stored in the weights predicts a test answer (pure in-context
  learning). `pool: N` draws each sequence's labelling from N fixed mappings (items → labels, balanced), the
  in-weights regime of Chan et al. when N is small (N = 1: one fixed labelling).
- **Fixed class sets** (`fixed`, with `pool: 0`): that share of the *training* class sets (chosen by hash)
  always carry one labelling, so their labels can be learned in the weights; the rest get fresh labellings.
  This plays the role of the frequent fixed-label classes of Chan et al.'s Zipfian data (REFERENCES §9).
  Measured here, 2-layer models of width 16–32 with `fixed: 0` stay on the plateau (loss ln 2 per label)
  for 3,000 steps, while with `fixed: 0.33` they learn in-context copying by step 500–750. Test class
  sets are never trained on, fixed or not, and all their labellings are test problems, so a per-item lean
  learned from the fixed sets scores exactly chance.
- **Test items** are few-shot problems: a labelling of `classes` items with distinct labels and a query
  class. `examples("test")` gives the zero-shot query (prompt = the query item; the evaluator's k-shot
  prompt is `in_context_query`: k pairs drawn from the same labelling, then the query). The query class is
  not forced into the context, so at small k even a perfect in-context learner sometimes has to guess. Every
  class of a test labelling is queried (one problem each, consecutively), so the answers are balanced.
  Choice task: the choices are all labels, chance accuracy 1/`labels`.
- **Disjoint splits**: the canonical item is a sequence's *class set* (its distinct items, sorted, e.g.
  `akqx`), hash-split as every task here: no test problem's classes are ever the classes of a training
  sequence, whatever the seeds, and so no test labelling is ever a training labelling. The split ignores the
  labels on purpose: every labelling of a class set falls on the same side, so each item's label is exactly
  uniform in both splits. (Hashing the labelling instead put, say, `a0,k1` in test and `a1,k1`… in train:
  an item's training labels then leaned against its test labels, and small models that learned the lean
  scored *below* chance.) Single (item, label) pairs do occur on both sides; with `pool: 0` they carry no
  information about a test answer.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from emergence.errors import UserError
from emergence.tasks.base import (
    ENUMERATE_LIMIT,
    TASKS,
    BaseTask,
    Example,
    HashSplitOptions,
    Split,
    hash_split,
    opt,
    split_rng,
    stable_unit,
    take,
)

ITEM_SYMBOLS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
LABEL_SYMBOLS = "0123456789"


@dataclass(frozen=True)
class ICLMappingOptions(HashSplitOptions):
    """Options of the icl_mapping task."""

    items: int = opt(26, "input items (a–z, A–Z; one token each)")
    labels: int = opt(4, "labels (digits 0–9; one token each); chance accuracy is 1/labels")
    classes: int = opt(4, "items a bursty sequence (and a test problem) draws from; distinct labels")
    pairs: int = opt(12, "(item, label) pairs per training sequence; every label is scored")
    bursty: float = opt(1.0, "share of training sequences that are bursty (items from `classes` items)")
    pool: int = opt(0, "fixed training mappings (0: a fresh random labelling for every sequence)")
    fixed: float = opt(
        0.0, "share of training class sets that always carry one labelling (in-weights learnable; pool 0)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 2 <= self.items <= len(ITEM_SYMBOLS):
            raise ValueError(f"items: must be between 2 and {len(ITEM_SYMBOLS)}, got {self.items}")
        if not 2 <= self.labels <= len(LABEL_SYMBOLS):
            raise ValueError(f"labels: must be between 2 and {len(LABEL_SYMBOLS)}, got {self.labels}")
        if not 2 <= self.classes <= min(self.items, self.labels):
            raise ValueError(
                f"classes: must be between 2 and min(items, labels) = {min(self.items, self.labels)} "
                f"(the classes of a sequence get distinct labels), got {self.classes}"
            )
        if not 2 <= self.pairs <= 256:
            raise ValueError(f"pairs: must be between 2 and 256, got {self.pairs}")
        if not 0.0 <= self.bursty <= 1.0:
            raise ValueError(f"bursty: must be between 0 and 1, got {self.bursty}")
        if self.pool < 0:
            raise ValueError(f"pool: must be 0 (fresh labellings) or a positive count, got {self.pool}")
        if not 0.0 <= self.fixed <= 1.0:
            raise ValueError(f"fixed: must be between 0 and 1, got {self.fixed}")
        if self.fixed and self.pool:
            raise ValueError("fixed: applies to fresh labellings (pool 0); pool mappings are fixed already")


def labelling_key(labelling: dict[str, str]) -> str:
    """A labelling written out: its classes with their labels, sorted (`a0,k2,q1`)."""
    return ",".join(f"{item}{label}" for item, label in sorted(labelling.items()))


def class_key(labelling: dict[str, str] | Iterable[str]) -> str:
    """The canonical (hash-split) item of a sequence or problem: its distinct items, sorted (`akq`)."""
    return "".join(sorted(set(labelling)))


@TASKS.register("icl_mapping")
class ICLMappingTask(BaseTask):
    """Few-shot classification under random labellings: `k2q0k2x3q0x` → `3` (Chan et al. 2022).

    Encoding: one character per item (`a`…) and per label (`0`…), pairs written back to back; a training
    item is a packed sequence `i₁l₁…i_P` → `l_P` whose labelling is drawn per sequence (`pool`), with every
    earlier label a loss span; a test item is the query item → its label under a labelling never used in
    training, and `in_context_query` writes its k-shot context. Details in the module docstring.
    """

    name = "icl_mapping"
    kind = "choice"
    description = "in-context learning: bursty (item, label) sequences under random labellings"
    Options = ICLMappingOptions
    opts: ICLMappingOptions

    @property
    def item_symbols(self) -> str:
        """The input items."""
        return ITEM_SYMBOLS[: self.opts.items]

    @property
    def label_symbols(self) -> str:
        """The labels, which are also every example's choices."""
        return LABEL_SYMBOLS[: self.opts.labels]

    @property
    def max_answer_len(self) -> int:
        """One label character."""
        return 1

    def _alphabet(self) -> Iterable[str]:
        return self.item_symbols + self.label_symbols

    def _in_test(self, labelling: dict[str, str]) -> bool:
        # The class set, not the labelling, is hashed: labels must not decide the split (module docstring).
        return hash_split(class_key(labelling), self.name, self.opts.test_fraction) == "test"

    def _mapping(self, j: int) -> dict[str, str]:
        # Pool mapping j: items shuffled, labels dealt round-robin, so every label labels ~items/labels items.
        items = list(self.item_symbols)
        random.Random(f"{self.name}|pool|{j}").shuffle(items)
        return {item: self.label_symbols[i % self.opts.labels] for i, item in enumerate(items)}

    def _fresh_labelling(self, classes: Sequence[str], rng: random.Random) -> dict[str, str]:
        return dict(zip(classes, rng.sample(self.label_symbols, len(classes)), strict=True))

    def _fixed_labelling(self, classes: Sequence[str]) -> dict[str, str] | None:
        """The one labelling a `fixed` training class set always carries, or None for a fresh one."""
        key = class_key(classes)
        if not self.opts.fixed or stable_unit(key, f"{self.name}|fixed") >= self.opts.fixed:
            return None
        labels = random.Random(f"{self.name}|fixed|{key}").sample(self.label_symbols, len(key))
        return dict(zip(key, labels, strict=True))

    def _sequence(self, rng: random.Random) -> list[tuple[str, str]]:
        """One training sequence (pairs), its labelling never a test labelling."""
        o = self.opts
        while True:
            mapping = self._mapping(rng.randrange(o.pool)) if o.pool else None
            if rng.random() < o.bursty:
                if mapping is None:
                    classes = rng.sample(self.item_symbols, o.classes)
                    labelling = self._fixed_labelling(classes) or self._fresh_labelling(classes, rng)
                else:
                    # Classes with distinct labels under the mapping: one item of each of `classes` labels.
                    by_label: dict[str, list[str]] = {}
                    for item, label in mapping.items():
                        by_label.setdefault(label, []).append(item)
                    chosen = rng.sample(sorted(by_label), o.classes)
                    labelling = {rng.choice(by_label[lab]): lab for lab in chosen}
                items = [rng.choice(sorted(labelling)) for _ in range(o.pairs)]
            else:
                items = [rng.choice(self.item_symbols) for _ in range(o.pairs)]
                distinct = sorted(set(items))
                if mapping is None:
                    labelling = {item: rng.choice(self.label_symbols) for item in distinct}
                else:
                    labelling = {item: mapping[item] for item in distinct}
            if not self._in_test(labelling):
                return [(item, labelling[item]) for item in items]

    def encode_sequence(self, pairs: Sequence[tuple[str, str]]) -> Example:
        """A packed training sequence as an example: every label but the last is a loss span of the prompt."""
        prompt = "".join(item + label for item, label in pairs[:-1]) + pairs[-1][0]
        spans = tuple((2 * j + 1, 2 * j + 2) for j in range(len(pairs) - 1))
        return Example(
            prompt,
            pairs[-1][1],
            tuple(self.label_symbols),
            meta={"labelling": labelling_key(dict(pairs))},
            loss_spans=spans,
        )

    def _problem(self, labelling: dict[str, str], query: str) -> Example:
        return Example(
            query,
            labelling[query],
            tuple(self.label_symbols),
            meta={"labelling": labelling_key(labelling), "query": query},
        )

    def _test_problems(self, n: int, rng: random.Random) -> list[Example]:
        o = self.opts
        # Distinct (labelling, query) problems: C(items, classes) · labels!/(labels−classes)! · classes.
        labellings = math.comb(o.items, o.classes) * math.perm(o.labels, o.classes)
        if labellings * o.classes <= ENUMERATE_LIMIT:
            # Small spaces are enumerated, so the split's size is exact and n may take all of it.
            labellings_in_test = [
                labelling
                for classes in itertools.combinations(self.item_symbols, o.classes)
                for labels in itertools.permutations(self.label_symbols, o.classes)
                for labelling in [dict(zip(classes, labels, strict=True))]
                if self._in_test(labelling)
            ]
            if n > len(labellings_in_test) * o.classes:
                take(labellings_in_test * o.classes, n, rng, self.name, "test")  # raises: "holds only …"
            # Every class of a labelling is queried, one after the other: the targets of a labelling are its
            # distinct labels, so the answers stay balanced (a model with a fixed label preference scores
            # chance, not the imbalance of a random subset).
            order = take(labellings_in_test, None, rng, self.name, "test")
            problems = [self._problem(lab, q) for lab in order for q in sorted(lab)]
            return problems[:n]
        expected = labellings * o.classes * o.test_fraction
        if n > expected / 2:
            raise UserError(
                f"task {self.name!r}: asked for {n} test examples but the test split holds only about "
                f"{expected:.3g} problems; sampling without replacement needs n ≤ {int(expected / 2)}"
            )
        out: list[Example] = []
        seen: set[tuple[str, str]] = set()
        while len(out) < n:
            classes = rng.sample(self.item_symbols, o.classes)
            labelling = self._fresh_labelling(classes, rng)
            query = rng.choice(classes)
            key = labelling_key(labelling)
            if (key, query) in seen or not self._in_test(labelling):
                continue
            seen.add((key, query))
            out.append(self._problem(labelling, query))
        return out

    def _examples(self, split: Split, n: int | None, seed: int) -> list[Example]:
        if n is None:
            raise UserError(f"task {self.name!r}: the {split} split is sampled; pass an explicit n")
        rng = split_rng(self.name, split, seed)
        if split == "test":
            return self._test_problems(n, rng)
        return [self.encode_sequence(self._sequence(rng)) for _ in range(n)]

    def in_context_query(self, query: Example, k: int, seed: Sequence[int] | int) -> Example:
        """The k-shot problem of a test query: k pairs drawn from its own labelling, then the query item."""
        labelling = dict(zip(query.meta["labelling"][::3], query.meta["labelling"][1::3], strict=True))
        rng = random.Random(f"{self.name}|context|{_seed_str(seed)}")
        classes = sorted(labelling)
        context = "".join(item + labelling[item] for item in (rng.choice(classes) for _ in range(k)))
        return Example(context + query.prompt, query.target, query.choices, meta=dict(query.meta))


def _seed_str(seed: Sequence[int] | int | Any) -> str:
    return str(seed) if isinstance(seed, int) else "-".join(str(s) for s in seed)
