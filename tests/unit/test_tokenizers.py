"""Tokenizers: special ids, round trips (hypothesis), unknown characters, save/load, malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emergence.errors import UserError
from emergence.tasks import make_task
from emergence.tokenizers import (
    SPECIAL_TOKENS,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    load_tokenizer,
)

ALPHABET = "0123456789+=abc \n"
CORPUS = "the cat sat on the mat. the dog sat on the log.\nwörld 日本語 emergence emergence emergence\n" * 20


@pytest.fixture(scope="module")
def bpe(tmp_path_factory: pytest.TempPathFactory) -> BPETokenizer:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return BPETokenizer.train([path], vocab_size=300)


def test_char_special_ids_and_layout() -> None:
    tok = CharTokenizer("ab=")
    assert isinstance(tok, Tokenizer)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.sep_id) == (0, 1, 2, 3)
    assert [tok.id_to_token(i) for i in range(4)] == list(SPECIAL_TOKENS)
    assert tok.vocab_size == 7
    assert tok.encode("ba=", add_bos=True, add_eos=True) == [1, 5, 4, 6, 2]
    assert tok.decode([1, 5, 4, 6, 2]) == "ba="
    assert tok.decode([1, 5, 2], skip_special=False) == "<bos>b<eos>"


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_char_round_trip(text: str) -> None:
    tok = CharTokenizer(sorted(set(ALPHABET)))
    assert tok.decode(tok.encode(text, add_bos=True, add_eos=True)) == text


def test_char_unknown_character_names_it_and_its_position() -> None:
    tok = CharTokenizer("0123456789+=")
    with pytest.raises(UserError, match=r"'x' \(U\+0078 LATIN SMALL LETTER X\) at position 3"):
        tok.encode("12+x=")
    with pytest.raises(UserError, match="U\\+0009"):
        tok.encode("1\t2")


def test_char_rejects_bad_vocabulary_and_ids() -> None:
    with pytest.raises(UserError, match="appears twice"):
        CharTokenizer("aba")
    with pytest.raises(UserError, match="one character"):
        CharTokenizer(["ab"])
    with pytest.raises(UserError, match="outside the vocabulary"):
        CharTokenizer("a").decode([9])


def test_char_for_tasks_is_sorted_union() -> None:
    add = make_task("addition", digits=2)
    mod = make_task("modular_addition", p=7, encoding="symbol")
    tok = CharTokenizer.for_tasks([add, mod])
    assert list(tok.chars) == sorted(set(add.alphabet()) | set(mod.alphabet()))
    assert CharTokenizer.for_tasks([mod, add]) == tok  # order of tasks does not matter
    for ex in add.examples("train", 20) + mod.examples("test", 20):
        assert tok.decode(tok.encode(ex.prompt + ex.target)) == ex.prompt + ex.target


def test_char_save_load(tmp_path: Path) -> None:
    tok = CharTokenizer("xyz\n")
    tok.save(tmp_path / "tok.json")
    loaded = load_tokenizer(tmp_path / "tok.json")
    assert isinstance(loaded, CharTokenizer)
    assert loaded == tok and loaded.encode("zy\n") == tok.encode("zy\n")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"type": "wordpiece"}', "'char' or 'bpe'"),
        ('{"type": "char", "chars": "abc"}', "list of single characters"),
        ('{"type": "char", "chars": ["a", "a"]}', "appears twice"),
        ('{"type": "char", "chars": ["a"], "version": 7}', "version"),
        ('{"type": "char", "chars": ["a"], "special_tokens": ["<unk>"]}', "special tokens"),
        ('{"type": "bpe", "tokenizer": {"model": 3}}', "malformed BPE"),
        ('{"type": "bpe"}', "Hugging Face tokenizer JSON"),
    ],
)
def test_malformed_tokenizer_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "tok.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as info:
        load_tokenizer(path)
    assert str(path) in str(info.value)


def test_missing_tokenizer_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_tokenizer(tmp_path / "nope.json")


def test_bpe_specials_and_merges(bpe: BPETokenizer) -> None:
    assert isinstance(bpe, Tokenizer)
    assert [bpe.id_to_token(i) for i in range(4)] == list(SPECIAL_TOKENS)
    assert 260 < bpe.vocab_size <= 300
    # merges were learned: a frequent word costs fewer tokens than bytes
    assert len(bpe.encode("emergence")) < len(b"emergence")
    ids = bpe.encode("the cat", add_bos=True, add_eos=True)
    assert ids[0] == bpe.bos_id and ids[-1] == bpe.eos_id
    assert bpe.decode(ids, skip_special=False) == "<bos>the cat<eos>"


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=60))
def test_bpe_round_trip_arbitrary_unicode(bpe: BPETokenizer, text: str) -> None:
    assert bpe.decode(bpe.encode(text)) == text


def test_bpe_special_token_text_is_not_parsed(bpe: BPETokenizer) -> None:
    ids = bpe.encode("a<eos>b")
    assert bpe.eos_id not in ids
    assert bpe.decode(ids) == "a<eos>b"


def test_bpe_save_load(bpe: BPETokenizer, tmp_path: Path) -> None:
    bpe.save(tmp_path / "bpe.json")
    assert json.loads((tmp_path / "bpe.json").read_text())["type"] == "bpe"
    loaded = load_tokenizer(tmp_path / "bpe.json")
    assert isinstance(loaded, BPETokenizer)
    text = "the dog sat 日本 <sep>"
    assert loaded.encode(text) == bpe.encode(text)
    assert loaded.decode(loaded.encode(text)) == text
    assert loaded.vocab_size == bpe.vocab_size


def test_bpe_train_errors(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("abc")
    with pytest.raises(UserError, match="vocab_size"):
        BPETokenizer.train([tmp_path / "a.txt"], vocab_size=100)
    with pytest.raises(UserError, match="not found"):
        BPETokenizer.train([tmp_path / "missing.txt"], vocab_size=300)
    with pytest.raises(UserError, match="at least one"):
        BPETokenizer.train([], vocab_size=300)
