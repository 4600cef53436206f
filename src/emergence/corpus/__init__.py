"""Synthetic corpora: a probabilistic context-free language with agreement, nesting and entropy dials."""

from __future__ import annotations

from emergence.corpus.documents import (
    SentencePair,
    corpus_text,
    grammar_sentence_pairs,
    sentence_pairs,
    write_corpus,
)
from emergence.corpus.grammar import (
    Document,
    EntropyStats,
    Grammar,
    GrammarConfig,
    Paragraph,
    ParseResult,
    Sentence,
)

__all__ = [
    "Document",
    "EntropyStats",
    "Grammar",
    "GrammarConfig",
    "Paragraph",
    "ParseResult",
    "Sentence",
    "SentencePair",
    "corpus_text",
    "grammar_sentence_pairs",
    "sentence_pairs",
    "write_corpus",
]
