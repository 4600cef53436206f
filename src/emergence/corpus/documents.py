"""Corpus files and next-sentence-prediction pairs from documents of the grammar language (or any documents).

    write_corpus("data/grammar.txt", n_docs=2000, seed=0)      # atomic; returns the exact entropy stats
    grammar_sentence_pairs(Grammar(), n=10_000, seed=0)        # 50 % true successors, 50 % random sentences

File layout: sentences joined by a space, paragraphs by a newline, documents by a blank line, a final
newline. The trainer reads such a file as a corpus (`data.corpus`), with the char tokenizer or BPE.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from emergence.corpus.grammar import Document, EntropyStats, Grammar, GrammarConfig
from emergence.errors import UserError
from emergence.io import write_text


@dataclass(frozen=True)
class SentencePair:
    """Two sentences and whether `b` follows `a` in its document (next-sentence prediction)."""

    a: str
    b: str
    is_next: bool


def sentence_pairs(documents: Sequence[Sequence[str]], n: int, seed: int = 0) -> list[SentencePair]:
    """BERT's sentence pairs (Devlin et al. 2019): a sentence and, with probability 1/2, its successor in the
    same document, else a sentence drawn uniformly from a different document. Deterministic in `seed`."""
    if n < 0:
        raise UserError(f"n: must be non-negative, got {n}")
    firsts = [(d, i) for d, doc in enumerate(documents) for i in range(len(doc) - 1)]
    if not firsts:
        raise UserError("sentence_pairs: no document has two sentences")
    if sum(1 for doc in documents if doc) < 2:
        raise UserError("sentence_pairs: random pairs need at least two non-empty documents")
    rng = random.Random(f"sentence-pairs|{seed}")
    out = []
    for _ in range(n):
        d, i = firsts[rng.randrange(len(firsts))]
        if rng.random() < 0.5:
            out.append(SentencePair(documents[d][i], documents[d][i + 1], True))
            continue
        while True:  # another document: a sentence of the same one could be the true successor by chance
            e = rng.randrange(len(documents))
            if e != d and documents[e]:
                break
        out.append(SentencePair(documents[d][i], documents[e][rng.randrange(len(documents[e]))], False))
    return out


def grammar_sentence_pairs(grammar: Grammar, n: int, seed: int = 0) -> list[SentencePair]:
    """`n` next-sentence pairs from enough documents of `grammar` (documents drawn with the same seed)."""
    lo, hi = grammar.cfg.sentences_per_paragraph
    plo, phi = grammar.cfg.paragraphs_per_document
    first_sentences = max((lo + hi) / 2 * (plo + phi) / 2 - 1, 1.0)  # expected sentences with a successor
    docs = grammar.documents(max(2, math.ceil(n / first_sentences)) + 1, seed)
    return sentence_pairs([d.sentences for d in docs], n, seed)


def corpus_text(documents: Iterable[Document]) -> str:
    """Documents separated by a blank line, ending with a newline."""
    return "\n\n".join(d.text for d in documents) + "\n"


def write_corpus(
    path: str | Path, n_docs: int, seed: int = 0, cfg: GrammarConfig | None = None
) -> EntropyStats:
    """Atomically write `n_docs` documents of the language to a UTF-8 text file; return the exact entropy."""
    if n_docs < 1:
        raise UserError(f"n_docs: must be at least 1, got {n_docs}")
    grammar = Grammar(cfg)
    write_text(path, corpus_text(grammar.documents(n_docs, seed)))
    return grammar.entropy()
