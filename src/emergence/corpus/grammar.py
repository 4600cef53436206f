"""A synthetic English-like language from a probabilistic context-free grammar with number agreement.

The language is small enough to check exactly and rich enough to hold the phenomena the emergence literature
probes: subject–verb agreement across attractors (Linzen et al. 2016; Marvin & Linzen 2018), nested relative
clauses and prepositional phrases, negation, and a lexicon with a Zipfian frequency profile.

    S      → NP.sg VP.sg | NP.pl VP.pl                       the subject fixes the verb's number
    NP.n   → Det.n NB.n | Det.n NB.n PP | Det.n NB.n RC.n    at most one modifier per noun phrase
    NB.n   → N.n | Adj N.n | Adj Adj N.n
    PP     → P NP.sg | P NP.pl                               "near the dogs": an attractor of either number
    RC.n   → that VP.n | that NP.m Vt.m                      subject and object relatives ("that dogs see")
    VP.n   → Vi.n | Aux.n not Vb | Vt.n NP.m | Cop.n Adj | Cop.n not Adj

A sentence is its words joined by spaces plus a final `.`: `the cat near the dogs is not happy.` Every
PP/RC expansion nests one level deeper; rules that would nest beyond `max_depth` are left out (the remaining
rules renormalised), so sentences are finite and depth is a dial. The grammar is unambiguous (each noun phrase
takes at most one modifier, verb phrases take none), which `parse` checks by counting derivations: the
probability of a derivation is then the probability of its string, and entropies computed over derivations
are entropies of text.

Entropy is set by a `temperature` τ and a Zipf exponent s: a lexical category's lemma of rank r has
probability ∝ (r+1)^(−s/τ), and rule weights w become w^(1/τ) before normalising, so τ → 0 approaches a
deterministic language and τ → ∞ the uniform one. `Grammar.entropy()` computes the exact entropy of a
sentence (given its paragraph's topic, see below) by dynamic programming over (symbol, depth), and divides by
the exact expected lengths: bits per word and per character.

Documents: a document is 1–3 paragraphs of 3–6 sentences (defaults). A paragraph draws a *topic* (a few noun
lemmas); each noun slot takes a topic noun with probability `topic_weight`, so consecutive sentences share
nouns more often than random pairs do: next-sentence prediction has signal (`corpus.documents`). Text
layout: sentences joined by a space, paragraphs by a newline, documents by a blank line.

Everything is deterministic from a seed (`random.Random` with string seeds, which Python hashes with sha512).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations
from typing import Union

from emergence.errors import UserError

NUMBERS: tuple[str, str] = ("sg", "pl")
# Symbols whose expansion nests one level deeper (noun-phrase modifiers).
EMBEDDING: frozenset[str] = frozenset({"PP", "RC.sg", "RC.pl"})
NEGATION = "not"

# Lexicon. Ranks follow list order (the first lemma is the most frequent one under the Zipf profile).
# Irregular plurals (children, mice, men, women, wolves) keep agreement from being a final-"s" heuristic.
NOUNS: tuple[tuple[str, str], ...] = (
    ("cat", "cats"),
    ("dog", "dogs"),
    ("child", "children"),
    ("teacher", "teachers"),
    ("bird", "birds"),
    ("farmer", "farmers"),
    ("mouse", "mice"),
    ("king", "kings"),
    ("woman", "women"),
    ("robot", "robots"),
    ("man", "men"),
    ("wolf", "wolves"),
    ("student", "students"),
    ("fox", "foxes"),
    ("baby", "babies"),
    ("queen", "queens"),
)
INTRANSITIVE: tuple[tuple[str, str], ...] = (
    ("sleeps", "sleep"),
    ("runs", "run"),
    ("laughs", "laugh"),
    ("waits", "wait"),
    ("sings", "sing"),
    ("smiles", "smile"),
    ("falls", "fall"),
    ("swims", "swim"),
    ("cries", "cry"),
    ("hides", "hide"),
)
TRANSITIVE: tuple[tuple[str, str], ...] = (
    ("sees", "see"),
    ("likes", "like"),
    ("chases", "chase"),
    ("finds", "find"),
    ("helps", "help"),
    ("watches", "watch"),
    ("follows", "follow"),
    ("knows", "know"),
    ("calls", "call"),
    ("carries", "carry"),
)
POSITIVE: frozenset[str] = frozenset({"happy", "kind", "brave", "gentle", "clever", "cheerful"})
NEGATIVE: frozenset[str] = frozenset({"sad", "cruel", "lazy", "angry", "rude", "gloomy"})
# Interleaved so that the Zipf profile favours neither polarity: ranks cycle positive/negative/neutral.
ADJECTIVES: tuple[str, ...] = (
    "happy", "sad", "big", "kind", "cruel", "small", "brave", "lazy", "old",
    "gentle", "angry", "young", "clever", "rude", "tall", "cheerful", "gloomy", "green",
)  # fmt: skip
DETERMINERS: dict[str, tuple[str, ...]] = {
    "sg": ("the", "this", "every", "each"),
    "pl": ("the", "some", "these", "many"),
}
PREPOSITIONS: tuple[str, ...] = ("near", "behind", "with", "under", "beside")
COPULA: dict[str, str] = {"sg": "is", "pl": "are"}
AUXILIARY: dict[str, str] = {"sg": "does", "pl": "do"}

# (singular, plural) forms of the categories that agree with the subject.
_FORMS: dict[str, tuple[tuple[str, str], ...]] = {
    "Vi": INTRANSITIVE,
    "Vt": TRANSITIVE,
    "Cop": ((COPULA["sg"], COPULA["pl"]),),
    "Aux": ((AUXILIARY["sg"], AUXILIARY["pl"]),),
}

# A derivation tree: (symbol, children); a preterminal's only child is its word.
Tree = tuple[str, tuple[Union["Tree", str], ...]]
Rule = tuple[tuple[str, ...], float]


def polarity(word: str) -> int:
    """+1 for a positive adjective, -1 for a negative one, 0 otherwise."""
    return 1 if word in POSITIVE else -1 if word in NEGATIVE else 0


@dataclass(frozen=True)
class GrammarConfig:
    """Dials of the language: nesting depth, entropy, modifier and negation rates, document layout."""

    max_depth: int = 2  # PP/RC embeddings nest at most this deep (0: no modifiers at all)
    temperature: float = 1.0  # τ: rule weights w → w^(1/τ), Zipf exponent s → s/τ; higher τ, higher entropy
    zipf_exponent: float = 1.0  # s: a lemma of rank r has weight (r+1)^(-s) (Zipf 1935; s≈1 in English)
    pp_weight: float = 0.2  # weight of "NP → Det NB PP" (at τ=1: its probability, below max_depth)
    rc_weight: float = 0.2  # weight of "NP → Det NB RC"; the plain NP gets 1 - pp_weight - rc_weight
    adjective_prob: float = 0.3  # chance of an attributive adjective (a second one with the same chance)
    negation_prob: float = 0.2  # share of copular and intransitive verb phrases that are negated
    topic_size: int = 3  # noun lemmas in a paragraph's topic
    topic_weight: float = 0.5  # chance that a noun slot takes a topic noun (0: sentences are i.i.d.)
    sentences_per_paragraph: tuple[int, int] = (3, 6)  # inclusive range, uniform
    paragraphs_per_document: tuple[int, int] = (1, 3)  # inclusive range, uniform

    def __post_init__(self) -> None:
        if isinstance(self.max_depth, bool) or not isinstance(self.max_depth, int) or self.max_depth < 0:
            raise ValueError(f"max_depth: must be a non-negative integer, got {self.max_depth!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: must be positive, got {self.temperature!r}")
        if not self.zipf_exponent >= 0:
            raise ValueError(f"zipf_exponent: must be non-negative, got {self.zipf_exponent!r}")
        for name in ("pp_weight", "rc_weight", "adjective_prob", "negation_prob", "topic_weight"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name}: must be in [0, 1), got {value!r}")
        if self.pp_weight + self.rc_weight >= 1.0:
            raise ValueError("pp_weight + rc_weight: must be below 1 (the plain noun phrase needs weight)")
        if not 1 <= self.topic_size < len(NOUNS):
            raise ValueError(f"topic_size: must be in [1, {len(NOUNS) - 1}], got {self.topic_size!r}")
        for name in ("sentences_per_paragraph", "paragraphs_per_document"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"{name}: need 1 <= low <= high, got ({lo}, {hi})")


@dataclass(frozen=True)
class Sentence:
    """One sampled sentence with its derivation."""

    words: tuple[str, ...]
    cats: tuple[str, ...]  # the preterminal (or "lit" for a literal such as "that"/"not") of each word
    tree: Tree
    logprob: (
        float  # natural log of the derivation's probability (= the string's, the grammar being unambiguous)
    )
    depth: int  # deepest PP/RC nesting used

    @property
    def text(self) -> str:
        """Words joined by spaces, with the final full stop."""
        return " ".join(self.words) + "."

    @property
    def number(self) -> str:
        """The subject's number, "sg" or "pl" (the main verb agrees with it)."""
        return self.tree[1][0][0].split(".")[1]  # type: ignore[index,union-attr]

    @property
    def main_verb(self) -> int:
        """Index of the first word of the main verb phrase: the word that agrees with the subject."""
        return _n_leaves(self.tree[1][0])

    @property
    def subject_head(self) -> int:
        """Index of the subject's head noun (modifiers follow the head, so it is the first noun)."""
        return next(i for i, c in enumerate(self.cats) if c.startswith("N."))

    @property
    def attractors(self) -> int:
        """Nouns between the subject's head and the main verb whose number differs from the subject's."""
        other = "N.pl" if self.number == "sg" else "N.sg"
        return sum(1 for c in self.cats[self.subject_head + 1 : self.main_verb] if c == other)

    @property
    def predicate_polarity(self) -> int:
        """Polarity of a copular main predicate: +1 for "is happy"/"is not sad", -1 for "is sad"/"is not
        happy", 0 when the main verb phrase is not copular or its adjective is neutral."""
        vp = self.tree[1][1]
        assert not isinstance(vp, str)
        children = vp[1]
        if isinstance(children[0], str) or not children[0][0].startswith("Cop."):
            return 0
        adj = children[-1]
        assert not isinstance(adj, str)
        sign = -1 if NEGATION in children else 1
        return sign * polarity(str(adj[1][0]))

    @property
    def verb_forms(self) -> tuple[str, str]:
        """(singular, plural) forms of the main verb (`("is", "are")`, `("sleeps", "sleep")`)."""
        i = self.main_verb
        forms = _FORMS[self.cats[i].split(".")[0]]
        return next(f for f in forms if self.words[i] in f)

    def with_main_verb_number(self, number: str) -> str:
        """The sentence text with the main verb in `number` (the other number gives an agreement error)."""
        words = list(self.words)
        words[self.main_verb] = self.verb_forms[NUMBERS.index(number)]
        return " ".join(words) + "."


@dataclass(frozen=True)
class Paragraph:
    """Sentences sharing one topic (noun lemma indices)."""

    topic: tuple[int, ...]
    sentences: tuple[Sentence, ...]

    @property
    def text(self) -> str:
        """Sentences joined by single spaces."""
        return " ".join(s.text for s in self.sentences)


@dataclass(frozen=True)
class Document:
    """One or more paragraphs."""

    paragraphs: tuple[Paragraph, ...]

    @property
    def text(self) -> str:
        """Paragraphs joined by newlines."""
        return "\n".join(p.text for p in self.paragraphs)

    @property
    def sentences(self) -> list[str]:
        """The sentence texts in order (paragraph boundaries dropped)."""
        return [s.text for p in self.paragraphs for s in p.sentences]


@dataclass(frozen=True)
class ParseResult:
    """Outcome of parsing a sentence: how many derivations, and the total probability of the string."""

    n_parses: int
    logprob: float  # natural log; -inf when there is no parse

    @property
    def valid(self) -> bool:
        """At least one derivation (the sentence is in the language, agreement included)."""
        return self.n_parses > 0


@dataclass(frozen=True)
class EntropyStats:
    """Exact entropy of one sentence given its paragraph topic, and the exact expected lengths."""

    bits_per_sentence: float
    words_per_sentence: float
    chars_per_sentence: float  # including the final "." and the one separator that follows every sentence
    topic_bits: float  # entropy of a paragraph's topic (0 when topic_weight is 0)

    @property
    def bits_per_word(self) -> float:
        """Entropy per word, H(S|topic) / E[words]."""
        return self.bits_per_sentence / self.words_per_sentence

    @property
    def bits_per_char(self) -> float:
        """Entropy per character of the sentence stream, H(S|topic) / E[chars + separator]."""
        return self.bits_per_sentence / self.chars_per_sentence


def _n_leaves(node: Tree | str) -> int:
    if isinstance(node, str):
        return 1
    return sum(_n_leaves(c) for c in node[1])


@dataclass
class _Dist:
    """A categorical distribution over outcomes, with cumulative weights for sampling."""

    items: list[object]
    probs: list[float]
    cum: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        total = 0.0
        for p in self.probs:
            total += p
            self.cum.append(total)


class Grammar:
    """The PCFG of the module docstring: sampling, exact parsing, entropy, documents and corpora."""

    def __init__(self, cfg: GrammarConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else GrammarConfig()
        self.rules = self._rules()
        self.lexicon = self._lexicon()
        self._rule_cache: dict[tuple[str, int], _Dist] = {}

    # ------------------------------------------------------------------------------------------ grammar

    def _rules(self) -> dict[str, list[Rule]]:
        c = self.cfg
        a, neg = c.adjective_prob, c.negation_prob
        r: dict[str, list[Rule]] = {"S": [(("NP.sg", "VP.sg"), 1.0), (("NP.pl", "VP.pl"), 1.0)]}
        r["PP"] = [(("P", "NP.sg"), 1.0), (("P", "NP.pl"), 1.0)]
        for n in NUMBERS:
            r[f"NP.{n}"] = [
                ((f"Det.{n}", f"NB.{n}"), 1.0 - c.pp_weight - c.rc_weight),
                ((f"Det.{n}", f"NB.{n}", "PP"), c.pp_weight),
                ((f"Det.{n}", f"NB.{n}", f"RC.{n}"), c.rc_weight),
            ]
            r[f"NB.{n}"] = [
                ((f"N.{n}",), 1.0 - a),
                (("Adj", f"N.{n}"), a * (1 - a)),
                (("Adj", "Adj", f"N.{n}"), a * a),
            ]
            r[f"RC.{n}"] = [
                (("that", f"VP.{n}"), 1.0),
                (("that", "NP.sg", "Vt.sg"), 0.5),
                (("that", "NP.pl", "Vt.pl"), 0.5),
            ]
            # Intransitive 0.3, transitive 0.4 (object of either number), copular 0.3; a share `neg` of the
            # intransitive and copular phrases is negated ("does not sleep", "is not happy").
            r[f"VP.{n}"] = [
                ((f"Vi.{n}",), 0.3 * (1 - neg)),
                ((f"Aux.{n}", NEGATION, "Vb"), 0.3 * neg),
                ((f"Vt.{n}", "NP.sg"), 0.2),
                ((f"Vt.{n}", "NP.pl"), 0.2),
                ((f"Cop.{n}", "Adj"), 0.3 * (1 - neg)),
                ((f"Cop.{n}", NEGATION, "Adj"), 0.3 * neg),
            ]
        # Zero-weight rules (e.g. negation_prob=0) are dropped, so that they can never be sampled or parsed.
        return {k: [(rhs, w) for rhs, w in v if w > 0] for k, v in r.items()}

    def _lexicon(self) -> dict[str, tuple[str, ...]]:
        lex: dict[str, tuple[str, ...]] = {
            "Adj": ADJECTIVES,
            "P": PREPOSITIONS,
            "Vb": tuple(p for _, p in INTRANSITIVE),
        }
        for i, n in enumerate(NUMBERS):
            lex[f"N.{n}"] = tuple(f[i] for f in NOUNS)
            lex[f"Vi.{n}"] = tuple(f[i] for f in INTRANSITIVE)
            lex[f"Vt.{n}"] = tuple(f[i] for f in TRANSITIVE)
            lex[f"Det.{n}"] = DETERMINERS[n]
            lex[f"Cop.{n}"] = (COPULA[n],)
            lex[f"Aux.{n}"] = (AUXILIARY[n],)
        return lex

    def alphabet(self) -> str:
        """Every character the corpus text can contain (sorted)."""
        words = [w for forms in self.lexicon.values() for w in forms] + ["that", NEGATION]
        return "".join(sorted(set("".join(words)) | {" ", ".", "\n"}))

    def rule_dist(self, symbol: str, depth: int) -> _Dist:
        """The rules of `symbol` usable at `depth` with their probabilities (temperature applied)."""
        key = (symbol, depth)
        dist = self._rule_cache.get(key)
        if dist is None:
            allowed = [
                (rhs, w)
                for rhs, w in self.rules[symbol]
                if depth < self.cfg.max_depth or not EMBEDDING.intersection(rhs)
            ]
            weights = [w ** (1.0 / self.cfg.temperature) for _, w in allowed]
            total = sum(weights)
            dist = _Dist([rhs for rhs, _ in allowed], [w / total for w in weights])
            self._rule_cache[key] = dist
        return dist

    @cached_property
    def _zipf(self) -> dict[str, list[float]]:
        s = self.cfg.zipf_exponent / self.cfg.temperature
        out = {}
        for cat, forms in self.lexicon.items():
            weights = [(r + 1) ** (-s) for r in range(len(forms))]
            total = sum(weights)
            out[cat] = [w / total for w in weights]
        return out

    @cached_property
    def _lexical_dists(self) -> dict[str, _Dist]:
        return {cat: _Dist(list(range(len(forms))), self._zipf[cat]) for cat, forms in self.lexicon.items()}

    def word_probs(self, cat: str, topic: Sequence[int] | None = None) -> list[float]:
        """Probabilities of a preterminal's lemmas, in lexicon order; nouns lean to the paragraph topic."""
        base = self._zipf[cat]
        if topic is None or not cat.startswith("N.") or self.cfg.topic_weight == 0:
            return base
        w = self.cfg.topic_weight
        share = w / len(topic)
        probs = [(1 - w) * p for p in base]
        for i in topic:
            probs[i] += share
        return probs

    # ------------------------------------------------------------------------------------------ sampling

    def sample_topic(self, rng: random.Random) -> tuple[int, ...]:
        """A paragraph topic: `topic_size` distinct noun lemmas, uniformly."""
        return tuple(sorted(rng.sample(range(len(NOUNS)), self.cfg.topic_size)))

    def sample_sentence(self, rng: random.Random, topic: Sequence[int] | None = None) -> Sentence:
        """One sentence, top-down from S, recording its derivation and probability."""
        words: list[str] = []
        cats: list[str] = []
        logp = 0.0
        max_depth = 0
        noun_probs = {n: _Dist(list(range(len(NOUNS))), self.word_probs(f"N.{n}", topic)) for n in NUMBERS}

        def expand(symbol: str, depth: int) -> Tree | str:
            nonlocal logp, max_depth
            max_depth = max(max_depth, depth)
            if symbol in self.rules:
                dist = self.rule_dist(symbol, depth)
                k = _draw(rng, dist)
                logp += math.log(dist.probs[k])
                rhs: tuple[str, ...] = dist.items[k]  # type: ignore[assignment]
                return (symbol, tuple(expand(ch, depth + 1 if ch in EMBEDDING else depth) for ch in rhs))
            if symbol in self.lexicon:
                dist = noun_probs[symbol[2:]] if symbol.startswith("N.") else self._lexical_dists[symbol]
                k = _draw(rng, dist)
                logp += math.log(dist.probs[k])
                word = self.lexicon[symbol][k]
                words.append(word)
                cats.append(symbol)
                return (symbol, (word,))
            words.append(symbol)  # a literal ("that", "not")
            cats.append("lit")
            return symbol

        tree = expand("S", 0)
        assert not isinstance(tree, str)
        return Sentence(tuple(words), tuple(cats), tree, logp, max_depth)

    def paragraph(self, rng: random.Random) -> Paragraph:
        """A topic and a uniform number of sentences about it."""
        topic = self.sample_topic(rng)
        lo, hi = self.cfg.sentences_per_paragraph
        n = rng.randint(lo, hi)
        return Paragraph(topic, tuple(self.sample_sentence(rng, topic) for _ in range(n)))

    def document(self, seed: int, index: int) -> Document:
        """Document `index` of the corpus with `seed` (independent of how many documents are drawn)."""
        rng = random.Random(f"grammar-document|{seed}|{index}")
        lo, hi = self.cfg.paragraphs_per_document
        return Document(tuple(self.paragraph(rng) for _ in range(rng.randint(lo, hi))))

    def documents(self, n: int, seed: int = 0) -> list[Document]:
        """The first `n` documents of the corpus with `seed`."""
        if n < 0:
            raise UserError(f"n_docs: must be non-negative, got {n}")
        return [self.document(seed, i) for i in range(n)]

    def sentences(self, n: int, seed: int = 0, topic: Sequence[int] | None = None) -> list[Sentence]:
        """`n` i.i.d. sentences (no paragraph structure), deterministic in `seed`."""
        rng = random.Random(f"grammar-sentences|{seed}")
        return [self.sample_sentence(rng, topic) for _ in range(n)]

    # ------------------------------------------------------------------------------------------ parsing

    def parse(self, text: str, topic: Sequence[int] | None = None) -> ParseResult:
        """Count a sentence's derivations and sum their probability (exact, memoised inside passes)."""
        if not text.endswith(".") or text.endswith(" .") or text != text.strip():
            return ParseResult(0, float("-inf"))
        words = text[:-1].split(" ")
        if any(not w for w in words):
            return ParseResult(0, float("-inf"))
        probs = {cat: self.word_probs(cat, topic) for cat in self.lexicon}
        index = {cat: {w: i for i, w in enumerate(forms)} for cat, forms in self.lexicon.items()}
        memo: dict[tuple[str, int, int], dict[int, tuple[float, int]]] = {}

        def ends(symbol: str, depth: int, i: int) -> dict[int, tuple[float, int]]:
            # {end position j: (probability that `symbol` at `depth` derives words[i:j], derivation count)}
            key = (symbol, depth, i)
            if key in memo:
                return memo[key]
            out: dict[int, tuple[float, int]] = {}
            if symbol in self.rules:
                dist = self.rule_dist(symbol, depth)
                for rhs, p_rule in zip(dist.items, dist.probs, strict=True):
                    partial = {i: (p_rule, 1)}
                    for ch in rhs:  # type: ignore[attr-defined]
                        d = depth + 1 if ch in EMBEDDING else depth
                        nxt: dict[int, tuple[float, int]] = {}
                        for pos, (p, c) in partial.items():
                            for j, (pc, cc) in ends(ch, d, pos).items():
                                q, m = nxt.get(j, (0.0, 0))
                                nxt[j] = (q + p * pc, m + c * cc)
                        partial = nxt
                        if not partial:
                            break
                    for j, (p, c) in partial.items():
                        q, m = out.get(j, (0.0, 0))
                        out[j] = (q + p, m + c)
            elif i < len(words):
                w = words[i]
                if symbol in self.lexicon:
                    k = index[symbol].get(w)
                    if k is not None:
                        out[i + 1] = (probs[symbol][k], 1)
                elif w == symbol:
                    out[i + 1] = (1.0, 1)
            memo[key] = out
            return out

        p, count = ends("S", 0, 0).get(len(words), (0.0, 0))
        return ParseResult(count, math.log(p) if p > 0 else float("-inf"))

    def is_valid(self, text: str) -> bool:
        """Is `text` a sentence of the language (agreement and depth limit included)?"""
        return self.parse(text).valid

    # ------------------------------------------------------------------------------------------ entropy

    def entropy(self) -> EntropyStats:
        """Exact H(sentence | topic) in bits and expected words/characters, by recursion over (symbol, depth).

        H(X, d) = H(rules of X at d) + Σ_rules p(rule) Σ_children H(child, d'), a preterminal's entropy
        being its lexical entropy; nouns use the topic-averaged entropy E_T H(noun | T), exact over all
        topics. The grammar is unambiguous, so derivation entropy is string entropy.
        """
        topics = (
            list(combinations(range(len(NOUNS)), self.cfg.topic_size)) if self.cfg.topic_weight else [None]
        )
        leaf_h: dict[str, float] = {}
        leaf_chars: dict[str, float] = {}
        for cat, forms in self.lexicon.items():
            hs, cs = [], []
            for t in topics if cat.startswith("N.") else [None]:
                p = self.word_probs(cat, t)
                hs.append(-sum(q * math.log2(q) for q in p if q > 0))
                cs.append(sum(q * len(f) for q, f in zip(p, forms, strict=True)))
            leaf_h[cat] = sum(hs) / len(hs)
            leaf_chars[cat] = sum(cs) / len(cs)
        memo: dict[tuple[str, int], tuple[float, float, float]] = {}

        def stats(symbol: str, depth: int) -> tuple[float, float, float]:
            # (entropy in bits, expected words, expected characters of the words)
            key = (symbol, depth)
            if key in memo:
                return memo[key]
            if symbol in self.lexicon:
                out = (leaf_h[symbol], 1.0, leaf_chars[symbol])
            elif symbol not in self.rules:
                out = (0.0, 1.0, float(len(symbol)))
            else:
                dist = self.rule_dist(symbol, depth)
                h = -sum(p * math.log2(p) for p in dist.probs)
                words = chars = 0.0
                for rhs, p in zip(dist.items, dist.probs, strict=True):
                    for ch in rhs:  # type: ignore[attr-defined]
                        hc, wc, cc = stats(ch, depth + 1 if ch in EMBEDDING else depth)
                        h, words, chars = h + p * hc, words + p * wc, chars + p * cc
                out = (h, words, chars)
            memo[key] = out
            return out

        h, words, chars = stats("S", 0)
        topic_bits = math.log2(math.comb(len(NOUNS), self.cfg.topic_size)) if self.cfg.topic_weight else 0.0
        # Characters: the words, a space between words, the final ".", one separator after the sentence.
        return EntropyStats(h, words, chars + (words - 1) + 1 + 1, topic_bits)


def _draw(rng: random.Random, dist: _Dist) -> int:
    """Index drawn from a categorical distribution (one uniform number, inverse CDF)."""
    u = rng.random() * dist.cum[-1]
    for k, c in enumerate(dist.cum):
        if u < c:
            return k
    return len(dist.cum) - 1
