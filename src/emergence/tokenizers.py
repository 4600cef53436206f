"""Tokenizers: a character tokenizer for symbolic tasks and a byte-level BPE for text corpora.

Both share one small interface (the `Tokenizer` protocol) and the same four special tokens, always first:

    id 0 <pad>   padding (never trained on)
    id 1 <bos>   start of a sequence
    id 2 <eos>   end of an answer
    id 3 <sep>   spare separator for callers that want one

`CharTokenizer` has an explicit vocabulary: every character a task can produce gets one id, and a character
outside the vocabulary is a `UserError` naming the character and its position, never a silent `<unk>`, because
a silently mapped character makes an exact-match score meaningless. `BPETokenizer` is byte-level (every string
encodes, every encoding decodes back to the same string) and is trained with the Hugging Face `tokenizers`
library on the user's own text files.

Both save to one JSON file with a `"type"` field; `load_tokenizer(path)` dispatches on it.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from emergence.errors import UserError
from emergence.io import write_json

if TYPE_CHECKING:
    from emergence.tasks.base import Task

PAD, BOS, EOS, SEP = "<pad>", "<bos>", "<eos>", "<sep>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, SEP)  # ids 0..3, in this order, in every tokenizer
FORMAT_VERSION = 1


@runtime_checkable
class Tokenizer(Protocol):
    """What the trainer, the evaluator and checkpoints need from a tokenizer."""

    @property
    def vocab_size(self) -> int: ...
    @property
    def pad_id(self) -> int: ...
    @property
    def bos_id(self) -> int: ...
    @property
    def eos_id(self) -> int: ...
    @property
    def sep_id(self) -> int: ...

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]: ...
    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str: ...
    def id_to_token(self, i: int) -> str: ...
    def save(self, path: str | os.PathLike[str]) -> None: ...


class _SpecialIds:
    """The special-token ids shared by both tokenizers (they are fixed by `SPECIAL_TOKENS`)."""

    @property
    def pad_id(self) -> int:
        """Id of `<pad>` (always 0)."""
        return 0

    @property
    def bos_id(self) -> int:
        """Id of `<bos>`."""
        return 1

    @property
    def eos_id(self) -> int:
        """Id of `<eos>`."""
        return 2

    @property
    def sep_id(self) -> int:
        """Id of `<sep>`."""
        return 3

    @property
    def special_ids(self) -> frozenset[int]:
        """Ids of all special tokens."""
        return frozenset(range(len(SPECIAL_TOKENS)))


def _describe_char(ch: str) -> str:
    """`'x'` or `'\\t' (U+0009 CHARACTER TABULATION)` — readable even for invisible characters."""
    name = unicodedata.name(ch, "")
    return f"{ch!r} (U+{ord(ch):04X}{' ' + name if name else ''})"


class CharTokenizer(_SpecialIds):
    """One id per character of an explicit vocabulary, after the four special tokens.

    Ids: `<pad>`=0, `<bos>`=1, `<eos>`=2, `<sep>`=3, then the characters in the order given. Special tokens
    are never parsed out of text: the text `"<eos>"` is five ordinary characters (if in the vocabulary).
    """

    def __init__(self, chars: Iterable[str]) -> None:
        chars = list(chars)
        seen: set[str] = set()
        for i, ch in enumerate(chars):
            if not isinstance(ch, str) or len(ch) != 1:
                raise UserError(f"char tokenizer: vocabulary entry {i} must be one character, got {ch!r}")
            if ch in seen:
                raise UserError(
                    f"char tokenizer: character {_describe_char(ch)} appears twice in the vocabulary"
                )
            seen.add(ch)
        self.chars: tuple[str, ...] = tuple(chars)
        self._stoi = {ch: i + len(SPECIAL_TOKENS) for i, ch in enumerate(self.chars)}
        self._itos = list(SPECIAL_TOKENS) + list(self.chars)

    @classmethod
    def for_tasks(cls, tasks: Iterable[Task], extra: str = "") -> CharTokenizer:
        """Vocabulary = the sorted union of the tasks' `alphabet()` (plus `extra`): deterministic."""
        chars: set[str] = set(extra)
        for task in tasks:
            chars.update(task.alphabet())
        return cls(sorted(chars))

    @property
    def vocab_size(self) -> int:
        """Number of ids (special tokens included)."""
        return len(self._itos)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Characters → ids; a character outside the vocabulary is a UserError naming it and its position."""
        ids = [self.bos_id] if add_bos else []
        stoi = self._stoi
        try:
            ids.extend(stoi[ch] for ch in text)
        except KeyError:
            pos, ch = next((i, c) for i, c in enumerate(text) if c not in stoi)
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise UserError(
                f"character {_describe_char(ch)} at position {pos} of {shown!r} is not in the tokenizer's "
                f"vocabulary ({len(self.chars)} characters); build the tokenizer from every task you use"
            ) from None
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """Ids → text; special tokens are dropped (or written as `<eos>` etc. with `skip_special=False`)."""
        n_special = len(SPECIAL_TOKENS)
        out: list[str] = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self._itos):
                raise UserError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
            if i < n_special and skip_special:
                continue
            out.append(self._itos[i])
        return "".join(out)

    def id_to_token(self, i: int) -> str:
        """The character (or special token) of one id."""
        if not 0 <= i < len(self._itos):
            raise UserError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return self._itos[i]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written by `save`."""
        return {
            "type": "char",
            "version": FORMAT_VERSION,
            "special_tokens": list(SPECIAL_TOKENS),
            "chars": list(self.chars),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomically write the tokenizer as JSON."""
        write_json(path, self.to_dict())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash(("char", self.chars))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, chars={''.join(self.chars)!r})"


class BPETokenizer(_SpecialIds):
    """Byte-level BPE (GPT-2 style) wrapping a Hugging Face `tokenizers.Tokenizer`.

    Every byte is in the base alphabet, so any unicode string encodes without loss; no normaliser runs, so
    `decode(encode(s)) == s` exactly. Special tokens keep the fixed ids 0..3 and are not parsed out of text
    (the text `"<eos>"` is encoded as ordinary bytes), for the same round-trip reason.
    """

    def __init__(self, hf_tokenizer: Any) -> None:
        for i, tok in enumerate(SPECIAL_TOKENS):
            if hf_tokenizer.token_to_id(tok) != i:
                raise UserError(f"BPE tokenizer: special token {tok} must have id {i}")
        # Text that happens to contain "<eos>" stays text: exact round trips, and no injected ids.
        hf_tokenizer.encode_special_tokens = True
        self._tok = hf_tokenizer

    @classmethod
    def train(
        cls,
        files: Sequence[str | os.PathLike[str]],
        vocab_size: int,
        min_frequency: int = 2,
        show_progress: bool = False,
    ) -> BPETokenizer:
        """Train a byte-level BPE on UTF-8 text files; `vocab_size` counts 256 bytes + 4 specials."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        minimum = 256 + len(SPECIAL_TOKENS)
        if vocab_size < minimum:
            raise UserError(
                f"vocab_size: must be at least {minimum} (256 bytes + 4 special tokens), got {vocab_size}"
            )
        if min_frequency < 1:
            raise UserError(f"min_frequency: must be at least 1, got {min_frequency}")
        if not files:
            raise UserError("BPE training needs at least one text file")
        paths = [Path(f) for f in files]
        for p in paths:
            if not p.is_file():
                raise UserError(f"file not found: {p}")
        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),  # added first, so they get ids 0..3
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is ever unknown
            show_progress=show_progress,
        )
        try:
            tok.train([str(p) for p in paths], trainer)
        except Exception as e:  # the Rust side reports unreadable/non-UTF-8 files as generic exceptions
            raise UserError(f"BPE training failed on {', '.join(map(str, paths))}: {e}") from None
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        """Number of ids (special tokens included)."""
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Text → ids (byte-level: never fails on a string)."""
        ids = list(self._tok.encode(text, add_special_tokens=False).ids)
        if add_bos:
            ids.insert(0, self.bos_id)
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """Ids → text; special tokens are dropped (or kept as `<eos>` etc. with `skip_special=False`)."""
        ids = [int(i) for i in ids]
        n = self.vocab_size
        for i in ids:
            if not 0 <= i < n:
                raise UserError(f"token id {i} is outside the vocabulary (size {n})")
        if not skip_special:
            # Decode runs of ordinary ids separately so that special tokens appear literally between them.
            out: list[str] = []
            run: list[int] = []
            for i in ids:
                if i in self.special_ids:
                    out.append(self._tok.decode(run, skip_special_tokens=True) if run else "")
                    out.append(SPECIAL_TOKENS[i])
                    run = []
                else:
                    run.append(i)
            out.append(self._tok.decode(run, skip_special_tokens=True) if run else "")
            return "".join(out)
        return str(self._tok.decode(ids, skip_special_tokens=True))

    def id_to_token(self, i: int) -> str:
        """The BPE token string of one id (byte-level symbols, e.g. `Ġthe`)."""
        tok = self._tok.id_to_token(int(i))
        if tok is None:
            raise UserError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return str(tok)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written by `save` (the HF tokenizer JSON nested under `"tokenizer"`)."""
        return {
            "type": "bpe",
            "version": FORMAT_VERSION,
            "special_tokens": list(SPECIAL_TOKENS),
            "tokenizer": json.loads(self._tok.to_str()),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomically write the tokenizer as JSON."""
        write_json(path, self.to_dict())

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


def tokenizer_from_dict(data: Any, where: str = "tokenizer") -> CharTokenizer | BPETokenizer:
    """Rebuild a tokenizer from its JSON form, dispatching on `"type"`; malformed data is a UserError."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if kind not in ("char", "bpe"):
        raise UserError(f"{where}: \"type\" must be 'char' or 'bpe', got {kind!r}")
    version = data.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise UserError(
            f"{where}: unsupported tokenizer format version {version!r} (expected {FORMAT_VERSION})"
        )
    specials = data.get("special_tokens", list(SPECIAL_TOKENS))
    if list(specials) != list(SPECIAL_TOKENS):
        raise UserError(f"{where}: special tokens must be {list(SPECIAL_TOKENS)}, got {specials!r}")
    if kind == "char":
        chars = data.get("chars")
        if not isinstance(chars, list):
            raise UserError(f'{where}: "chars" must be a list of single characters')
        try:
            return CharTokenizer(chars)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
    payload = data.get("tokenizer")
    if not isinstance(payload, dict):
        raise UserError(f'{where}: "tokenizer" must be the Hugging Face tokenizer JSON object')
    from tokenizers import Tokenizer as HFTokenizer

    try:
        hf = HFTokenizer.from_str(json.dumps(payload))
    except Exception as e:  # the Rust parser raises a plain Exception with the serde message
        raise UserError(f"{where}: malformed BPE tokenizer: {e}") from None
    try:
        return BPETokenizer(hf)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None


def load_tokenizer(path: str | os.PathLike[str]) -> CharTokenizer | BPETokenizer:
    """Load a tokenizer saved by `save`; a missing or malformed file is a UserError naming it."""
    from emergence.io import read_json

    return tokenizer_from_dict(read_json(path), where=str(path))
