"""Exported models load in transformers offline and give our logits (≤ 1e-4) with our token ids."""

from __future__ import annotations

import pytest
import torch

from emergence.cli import main
from emergence.models.gpt import GPT, GPTConfig
from emergence.models.hf import export_gpt2
from emergence.tokenizers import BPETokenizer, CharTokenizer

transformers = pytest.importorskip("transformers")

CHARS = "0123456789+=|abc "


def _check(model: GPT, tokenizer, tmp_path, text: str) -> None:
    out = export_gpt2(model, tokenizer, tmp_path / "hf")
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    ids = tokenizer.encode(text, add_bos=True)
    assert [hf_tok.bos_token_id, *hf_tok(text, add_special_tokens=False)["input_ids"]] == ids
    assert hf_tok.decode(ids[1:]) == text
    x = torch.tensor([ids])
    with torch.no_grad():
        ours = model(x)
        theirs = hf_model(x).logits
    assert (ours - theirs).abs().max().item() <= 1e-4


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"bias": False, "act": "relu"},
        {"attn_only": True},
        {"tie_embeddings": False, "d_mlp": 24},
    ],
)
def test_char_model_roundtrip(tmp_path, flags) -> None:
    tok = CharTokenizer(CHARS)
    cfg = GPTConfig(vocab_size=tok.vocab_size, n_layer=2, n_head=2, d_model=16, n_ctx=32, **flags)
    torch.manual_seed(1)
    model = GPT(cfg).eval()
    with torch.no_grad():  # move every weight off its init so that a wrong mapping shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    _check(model, tok, tmp_path, "123+45=|abc")


def test_bpe_model_roundtrip(tmp_path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. the dog sat on the log.\n" * 50)
    tok = BPETokenizer.train([corpus], vocab_size=300)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, d_model=16, n_ctx=32)).eval()
    _check(model, tok, tmp_path, "the cat sat on the log.")


def test_unexportable_and_non_empty_target(tmp_path) -> None:
    tok = CharTokenizer(CHARS)
    no_norm = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, d_model=8, n_ctx=8, norm="none"))
    from emergence.errors import UserError

    with pytest.raises(UserError, match="norm='none'"):
        export_gpt2(no_norm, tok, tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "precious.txt").write_text("keep")
    ok = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, d_model=8, n_ctx=8))
    with pytest.raises(UserError, match="not an earlier export"):
        export_gpt2(ok, tok, tmp_path / "b")
    assert (tmp_path / "b" / "precious.txt").read_text() == "keep"


def test_cli_missing_run_dir(tmp_path, capsys) -> None:
    assert main(["export", str(tmp_path / "nope"), "--to", str(tmp_path / "out")]) == 2
    assert "run directory not found" in capsys.readouterr().err


def test_tokenizer_adds_bos_with_special_tokens(tmp_path) -> None:
    tok = CharTokenizer(CHARS)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, d_model=8, n_ctx=16))
    out = export_gpt2(model, tok, tmp_path / "hf")
    hf_tok = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert hf_tok("12+3=")["input_ids"] == tok.encode("12+3=", add_bos=True)
    assert hf_tok("12+3=", add_special_tokens=False)["input_ids"] == tok.encode("12+3=")
