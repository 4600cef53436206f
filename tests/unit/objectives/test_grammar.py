"""The grammar language: determinism, validity by an independent parse, exact entropy, depth, files, pairs."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from pathlib import Path

import pytest

from emergence.corpus import (
    Grammar,
    GrammarConfig,
    corpus_text,
    grammar_sentence_pairs,
    sentence_pairs,
    write_corpus,
)
from emergence.corpus.grammar import NEGATIVE, POSITIVE, polarity
from emergence.errors import UserError


def test_documents_are_deterministic_and_seeded() -> None:
    g = Grammar()
    a = corpus_text(g.documents(5, seed=3))
    assert a == corpus_text(Grammar().documents(5, seed=3))
    assert a != corpus_text(g.documents(5, seed=4))
    # Document i does not depend on how many documents are drawn.
    assert g.documents(2, seed=3) == g.documents(5, seed=3)[:2]
    assert set(a) <= set(g.alphabet())


def test_every_sampled_sentence_parses_once_with_the_sampled_probability() -> None:
    g = Grammar()
    rng = random.Random(0)
    for _ in range(300):
        topic = g.sample_topic(rng)
        s = g.sample_sentence(rng, topic)
        r = g.parse(s.text, topic)
        assert r.valid, s.text
        assert r.n_parses == 1, f"ambiguous: {s.text}"
        assert math.isclose(r.logprob, s.logprob, rel_tol=1e-9, abs_tol=1e-9)


def test_agreement_errors_are_rejected() -> None:
    g = Grammar()
    rng = random.Random(1)
    n_attractors = 0
    for _ in range(300):
        s = g.sample_sentence(rng)
        wrong = "pl" if s.number == "sg" else "sg"
        assert g.is_valid(s.with_main_verb_number(s.number))
        assert not g.is_valid(s.with_main_verb_number(wrong)), s.with_main_verb_number(wrong)
        n_attractors += s.attractors > 0
    assert n_attractors > 10  # attractors occur, so the check covers agreement across them
    for bad in ("the cats sleeps.", "the cat sleep.", "the cat near the dogs sleep.", "the cat sleeps",
                "the cat  sleeps.", "cat sleeps.", "the cat that the dogs sees sleeps."):  # fmt: skip
        assert not g.is_valid(bad), bad
    for good in ("the cat near the dogs sleeps.", "the cats that the dog sees are not happy.",
                 "the children do not cry."):  # fmt: skip
        assert g.is_valid(good), good


@pytest.mark.parametrize("max_depth", [0, 1, 3])
def test_depth_limit(max_depth: int) -> None:
    g = Grammar(GrammarConfig(max_depth=max_depth, pp_weight=0.4, rc_weight=0.4))
    depths = [s.depth for s in g.sentences(300, seed=0)]
    assert max(depths) == max_depth
    if max_depth == 0:
        assert not g.is_valid("the cat near the dog sleeps.")
    else:
        assert g.is_valid("the cat near the dog sleeps.")


def _entropies(texts: list[str]) -> tuple[float, float]:
    """Empirical unigram entropy and conditional (bigram) entropy of words, in bits."""
    words = [w for t in texts for w in ["<s>", *t[:-1].split(" ")]]
    uni = Counter(words)
    n = sum(uni.values())
    h1 = -sum(c / n * math.log2(c / n) for c in uni.values())
    bi = Counter(itertools.pairwise(words))
    m = sum(bi.values())
    h2 = -sum(c / m * math.log2(c / uni[a]) for (a, _), c in bi.items())
    return h1, h2


def test_temperature_raises_entropy() -> None:
    results = []
    for tau in (0.5, 1.0, 2.0):
        g = Grammar(GrammarConfig(temperature=tau, topic_weight=0.0))
        texts = [s.text for s in g.sentences(1500, seed=0)]
        results.append((*_entropies(texts), g.entropy().bits_per_word, g.entropy().bits_per_char))
    for lo, hi in itertools.pairwise(results):
        assert all(a < b for a, b in zip(lo, hi, strict=True)), results


def test_exact_entropy_matches_monte_carlo() -> None:
    g = Grammar(GrammarConfig(max_depth=2))
    stats = g.entropy()
    rng = random.Random(7)
    surprisal, words, chars = [], [], []
    for _ in range(3000):
        s = g.sample_sentence(rng, g.sample_topic(rng))
        surprisal.append(-s.logprob / math.log(2))
        words.append(len(s.words))
        chars.append(len(s.text) + 1)
    n = len(surprisal)
    mean = sum(surprisal) / n
    se = math.sqrt(sum((x - mean) ** 2 for x in surprisal) / (n - 1) / n)
    assert abs(mean - stats.bits_per_sentence) < 4 * se
    assert abs(sum(words) / n - stats.words_per_sentence) < 0.05 * stats.words_per_sentence
    assert abs(sum(chars) / n - stats.chars_per_sentence) < 0.05 * stats.chars_per_sentence
    assert stats.bits_per_char == pytest.approx(stats.bits_per_sentence / stats.chars_per_sentence)


def test_no_topic_entropy_equals_plain_sampling() -> None:
    g = Grammar(GrammarConfig(topic_weight=0.0, max_depth=1))
    stats = g.entropy()
    assert stats.topic_bits == 0.0
    ss = g.sentences(3000, seed=1)
    mean = sum(-s.logprob for s in ss) / len(ss) / math.log(2)
    assert mean == pytest.approx(stats.bits_per_sentence, rel=0.03)


def test_polarity_of_predicates() -> None:
    g = Grammar(GrammarConfig(negation_prob=0.5))
    assert polarity("happy") == 1 and polarity("cruel") == -1 and polarity("big") == 0
    seen = set()
    for s in g.sentences(400, seed=2):
        pol = s.predicate_polarity
        words = s.words[s.main_verb :]
        if words[0] not in ("is", "are"):
            assert pol == 0
            continue
        adj = words[2] if words[1] == "not" else words[1]
        expected = (1 if adj in POSITIVE else -1 if adj in NEGATIVE else 0) * (-1 if words[1] == "not" else 1)
        assert pol == expected
        seen.add(pol)
    assert seen == {-1, 0, 1}


def test_topics_make_consecutive_sentences_share_nouns() -> None:
    g = Grammar(GrammarConfig(topic_weight=0.7))
    pairs = grammar_sentence_pairs(g, 2000, seed=0)
    nouns = {w for cat in ("N.sg", "N.pl") for w in g.lexicon[cat]}

    def shared(p: object) -> bool:
        a = set(p.a[:-1].split(" ")) & nouns  # type: ignore[attr-defined]
        b = set(p.b[:-1].split(" ")) & nouns  # type: ignore[attr-defined]
        return bool(a & b)

    true_rate = sum(shared(p) for p in pairs if p.is_next) / sum(p.is_next for p in pairs)
    rand_rate = sum(shared(p) for p in pairs if not p.is_next) / sum(not p.is_next for p in pairs)
    assert true_rate > rand_rate + 0.1


def test_sentence_pairs_balance_and_successors() -> None:
    docs = [[f"d{d}s{i}." for i in range(4)] for d in range(30)]
    pairs = sentence_pairs(docs, 4000, seed=1)
    assert pairs == sentence_pairs(docs, 4000, seed=1)
    k = sum(p.is_next for p in pairs)
    assert abs(k - 2000) < 4 * math.sqrt(4000 * 0.25)  # Binomial(4000, 1/2) within 4 sd
    for p in pairs:
        da, ia = p.a[1:-1].split("s")
        db, ib = p.b[1:-1].split("s")
        if p.is_next:
            assert da == db and int(ib) == int(ia) + 1
        else:
            assert da != db
    with pytest.raises(UserError):
        sentence_pairs([["only one."]], 3)


def test_write_corpus_is_atomic_and_deterministic(tmp_path: Path) -> None:
    path = tmp_path / "corpus" / "grammar.txt"
    stats = write_corpus(path, 4, seed=0)
    text = path.read_text(encoding="utf-8")
    assert text == corpus_text(Grammar().documents(4, seed=0))
    assert text.endswith("\n") and text.count("\n\n") == 3
    assert stats.bits_per_char > 0
    assert [p.name for p in path.parent.iterdir()] == ["grammar.txt"]  # no temporary left behind
    with pytest.raises(UserError):
        write_corpus(path, 0)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="temperature"):
        GrammarConfig(temperature=0)
    with pytest.raises(ValueError, match="pp_weight"):
        GrammarConfig(pp_weight=0.6, rc_weight=0.5)
    with pytest.raises(ValueError, match="max_depth"):
        GrammarConfig(max_depth=-1)
