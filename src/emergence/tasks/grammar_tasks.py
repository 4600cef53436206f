"""Labelled choice tasks drawn from the synthetic grammar language (`emergence.corpus.grammar`).

- `agreement`: does the main verb agree with its subject? The subject may be separated from the verb by
  prepositional phrases and relative clauses whose nouns have the other number (attractors), as in the
  agreement probes of Linzen et al. (2016) and Marvin & Linzen (2018).
- `polarity`: is the sentence's main predicate positive or negative? Defined by the grammar: the copular main
  predicate's adjective is in a positive or negative lexicon, flipped by "not"; attributive adjectives and
  the predicates of relative clauses are distractors (`the cruel cat that is sad is not happy.` is negative).

Sentences are i.i.d. draws of the grammar (no paragraph topics). The canonical item of an example is the
grammatical sentence's text (for the agreement task's prefix format: the words before the verb), assigned to a
split by hash, so a test sentence (or its corrupted twin, or its prefix) never appears in training.
Examples are drawn by rejection from a seeded stream, so a shorter list is a prefix of a longer one, and
asking for more distinct sentences than the stream yields in a bounded number of draws is a UserError.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from emergence.corpus.grammar import (
    AUXILIARY,
    COPULA,
    INTRANSITIVE,
    TRANSITIVE,
    Grammar,
    GrammarConfig,
    Sentence,
)
from emergence.errors import UserError
from emergence.tasks.base import TASKS, BaseTask, Example, HashSplitOptions, Split, hash_split, opt, split_rng

# Draws allowed per requested example before giving up (rejection rates stay well below 1/50 in practice).
DRAWS_PER_EXAMPLE = 200


@dataclass(frozen=True)
class GrammarTaskOptions(HashSplitOptions):
    """Options shared by the grammar tasks: the language's dials and a sentence-length cap."""

    max_depth: int = opt(2, "deepest nesting of prepositional phrases / relative clauses")
    temperature: float = opt(1.0, "grammar temperature: higher gives more varied words and structures")
    max_words: int = opt(20, "longest sentence (in words) an example may use")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.max_depth <= 6:
            raise ValueError(f"max_depth: must be between 0 and 6, got {self.max_depth}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: must be positive, got {self.temperature}")
        if not 3 <= self.max_words <= 100:
            raise ValueError(f"max_words: must be between 3 and 100, got {self.max_words}")


class _GrammarTask(BaseTask):
    """Shared machinery: the grammar, the seeded rejection sampler and the split by sentence text."""

    opts: GrammarTaskOptions

    def _grammar_config(self) -> GrammarConfig:
        return GrammarConfig(
            max_depth=self.opts.max_depth, temperature=self.opts.temperature, topic_weight=0.0
        )

    @cached_property
    def grammar(self) -> Grammar:
        """The language the examples come from."""
        return Grammar(self._grammar_config())

    @property
    def _longest_sentence(self) -> int:
        longest_word = max(len(w) for forms in self.grammar.lexicon.values() for w in forms)
        return self.opts.max_words * (longest_word + 1)  # words, spaces and the final "."

    def _alphabet(self) -> Iterable[str]:
        return self.grammar.alphabet().replace("\n", "") + self._extra_chars()

    def _extra_chars(self) -> str:
        """Characters of the prompt/answer layout beyond the sentences'."""
        return ""

    def _key(self, s: Sentence) -> str:
        """The canonical item of the example made from `s` (what the split hashes)."""
        return s.text

    def _draw(
        self,
        split: Split,
        n: int | None,
        seed: int,
        make: Callable[[Sentence, random.Random], Example | None],
        sample: Callable[[random.Random], Sentence] | None = None,
    ) -> list[Example]:
        """Examples from distinct sentences of `split`; `make` may reject a sentence by returning None."""
        if n is None:
            raise UserError(f"task {self.name!r}: the {split} split is a sentence stream; pass an explicit n")
        rng = split_rng(self.name, split, seed)
        draw = sample or (lambda r: self.grammar.sample_sentence(r))
        out: list[Example] = []
        seen: set[str] = set()
        for _ in range(DRAWS_PER_EXAMPLE * n + 1000):
            if len(out) == n:
                break
            s = draw(rng)
            key = self._key(s)
            if len(s.words) > self.opts.max_words or key in seen:
                continue
            if hash_split(key, self.name, self.opts.test_fraction) != split:
                continue
            ex = make(s, rng)
            if ex is not None:
                seen.add(key)
                out.append(ex)
        if len(out) < n:
            raise UserError(
                f"task {self.name!r}: found only {len(out)} distinct {split} sentences of the {n} asked for; "
                "raise max_depth, temperature or max_words, or lower n"
            )
        return out


@dataclass(frozen=True)
class AgreementOptions(GrammarTaskOptions):
    """Options of the agreement task."""

    format: Literal["prefix", "pair", "judge"] = opt(
        "prefix", "prefix: choose the verb form; pair: choose the sentence; judge: yes/no on one sentence"
    )
    min_attractors: int = opt(0, "only sentences with at least this many attractor nouns before the verb")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.format not in ("prefix", "pair", "judge"):
            raise ValueError(f"format: must be 'prefix', 'pair' or 'judge', got {self.format!r}")
        if not 0 <= self.min_attractors <= self.max_depth:
            raise ValueError(
                f"min_attractors: must be between 0 and max_depth={self.max_depth}, got {self.min_attractors}"
            )


@TASKS.register("agreement")
class AgreementTask(_GrammarTask):
    """Subject–verb number agreement in the grammar language.

    Encodings (the main verb is the first word of the main verb phrase: `sleeps`, `is`, `does`, `sees`):
    - `prefix` (default; Linzen et al. 2016): prompt = the words before the main verb and a space, choices =
      the verb's (singular, plural) forms, target = the agreeing one: `the cat near the dogs ` → `is`,
      choices `("is", "are")`. Chance 1/2; subjects are singular or plural with equal probability.
    - `pair` (BLiMP-style minimal pair, Warstadt et al. 2020): empty prompt, choices = the sentence and its
      twin with the main verb's number flipped, in random order; target = the grammatical one.
    - `judge`: prompt = the sentence or (with probability 1/2) its twin, then ` grammatical:`; choices
      `("yes", "no")`.
    `min_attractors` keeps only sentences with that many nouns of the other number between the subject's head
    and the verb (`meta["attractors"]`).
    """

    name = "agreement"
    kind = "choice"
    description = "subject-verb agreement in the grammar language (choose the agreeing verb or sentence)"
    Options = AgreementOptions
    opts: AgreementOptions

    def _extra_chars(self) -> str:
        return "grammatical:yesno" if self.opts.format == "judge" else ""

    @property
    def max_answer_len(self) -> int:
        """Longest verb form, sentence or yes/no, by format."""
        if self.opts.format == "judge":
            return 3
        if self.opts.format == "pair":
            return self._longest_sentence
        forms = [*INTRANSITIVE, *TRANSITIVE, tuple(COPULA.values()), tuple(AUXILIARY.values())]
        return max(len(f) for pair in forms for f in pair)

    def _key(self, s: Sentence) -> str:
        # A prefix example shows only the words before the verb, and many sentences share them: the prefix
        # is the item, so one prefix never lands in both splits.
        return " ".join(s.words[: s.main_verb]) if self.opts.format == "prefix" else s.text

    def encode(self, s: Sentence, rng: random.Random) -> Example | None:
        """The example for one sentence (None when it has too few attractors)."""
        if s.attractors < self.opts.min_attractors:
            return None
        good = s.text
        bad = s.with_main_verb_number("pl" if s.number == "sg" else "sg")
        meta = {"sentence": good, "number": s.number, "attractors": s.attractors, "depth": s.depth}
        if self.opts.format == "prefix":
            i = s.main_verb
            prompt = " ".join(s.words[:i]) + " "
            return Example(prompt, s.words[i], s.verb_forms, meta=meta)
        if self.opts.format == "pair":
            choices = (good, bad) if rng.random() < 0.5 else (bad, good)
            return Example("", good, choices, meta=meta)
        grammatical = rng.random() < 0.5
        shown = good if grammatical else bad
        return Example(f"{shown} grammatical:", "yes" if grammatical else "no", ("yes", "no"), meta=meta)

    def _examples(self, split: Split, n: int | None, seed: int) -> list[Example]:
        return self._draw(split, n, seed, self.encode)


@dataclass(frozen=True)
class PolarityOptions(GrammarTaskOptions):
    """Options of the polarity task."""

    negation_prob: float = opt(0.3, "share of copular and intransitive verb phrases negated with 'not'")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.negation_prob < 1.0:
            raise ValueError(f"negation_prob: must be in [0, 1), got {self.negation_prob}")


@TASKS.register("polarity")
class PolarityTask(_GrammarTask):
    """Polarity of the main predicate: `the cat near the cruel dogs is not sad. polarity:` → `positive`.

    Encoding: prompt = a sentence whose main verb phrase is copular with a positive or negative adjective,
    then ` polarity:`; choices `("positive", "negative")`. The label is the adjective's lexicon polarity,
    flipped when the predicate is negated. Labels are balanced (each example first draws its label with
    probability 1/2, then a sentence with that label); chance is 1/2. A bag-of-words model gets part of the
    way (the predicate's adjective counts), but distractor adjectives and negation need structure.
    """

    name = "polarity"
    kind = "choice"
    description = "positive/negative main predicate in the grammar language (negation flips it)"
    Options = PolarityOptions
    opts: PolarityOptions

    def _extra_chars(self) -> str:
        return "polarity:positivenegative"

    def _grammar_config(self) -> GrammarConfig:
        return GrammarConfig(
            max_depth=self.opts.max_depth,
            temperature=self.opts.temperature,
            negation_prob=self.opts.negation_prob,
            topic_weight=0.0,
        )

    @property
    def max_answer_len(self) -> int:
        """len("positive") = len("negative") = 8."""
        return 8

    def _examples(self, split: Split, n: int | None, seed: int) -> list[Example]:
        def sample(rng: random.Random) -> Sentence:
            want = 1 if rng.random() < 0.5 else -1
            for _ in range(DRAWS_PER_EXAMPLE):
                s = self.grammar.sample_sentence(rng)
                if s.predicate_polarity == want and len(s.words) <= self.opts.max_words:
                    return s
            raise UserError(f"task {self.name!r}: could not draw a sentence with a polar copular predicate")

        def make(s: Sentence, rng: random.Random) -> Example:
            label = "positive" if s.predicate_polarity > 0 else "negative"
            meta = {"sentence": s.text, "negated": "not" in s.words[s.main_verb : s.main_verb + 2]}
            return Example(f"{s.text} polarity:", label, ("positive", "negative"), meta=meta)

        return self._draw(split, n, seed, make, sample)
