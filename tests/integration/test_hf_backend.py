"""Local Hugging Face causal LMs through our LanguageModel protocol and hook vocabulary, offline."""

from __future__ import annotations

import pytest
import torch

from emergence.evaluate.lm import GPTLanguageModel
from emergence.models.gpt import GPT, GPTConfig
from emergence.models.hf import HookedHFModel, export_gpt2, hf_fast_tokenizer, load_hf_causal_lm
from emergence.tokenizers import CharTokenizer
from tests.unit.evaluate.contract import check_language_model_contract

transformers = pytest.importorskip("transformers")
from emergence.evaluate.hf_lm import HFLanguageModel  # noqa: E402

CHARS = "0123456789+=\n"


@pytest.fixture(scope="module")
def ours() -> tuple[GPT, CharTokenizer]:
    tok = CharTokenizer(CHARS)
    torch.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=2, n_head=2, d_model=16, n_ctx=48)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model, tok


def _save_random(tmp_path, kind: str) -> str:
    tok = CharTokenizer(CHARS)
    common = {"vocab_size": tok.vocab_size, "bos_token_id": tok.bos_id, "eos_token_id": tok.eos_id}
    if kind == "gpt2":
        cfg = transformers.GPT2Config(n_embd=16, n_layer=2, n_head=2, n_positions=48, **common)
        model = transformers.GPT2LMHeadModel(cfg)
    else:
        cfg = transformers.GPTNeoXConfig(
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=48,
            **common,
        )
        model = transformers.GPTNeoXForCausalLM(cfg)
    out = tmp_path / kind
    model.save_pretrained(out)
    hf_fast_tokenizer(tok).save_pretrained(out)
    return str(out)


def test_exported_model_scores_like_ours(tmp_path, ours) -> None:
    model, tok = ours
    out = export_gpt2(model, tok, tmp_path / "export")
    hf_lm = HFLanguageModel.from_pretrained(out)
    assert hf_lm.add_bos  # our exports start from <bos>, as in training
    our_lm = GPTLanguageModel(model, tok, use_prefix_cache=False)
    reqs = [("12+34=", "46"), ("7+8=", "15"), ("999+1=", "1000")]
    for a, b in zip(hf_lm.loglikelihood(reqs), our_lm.loglikelihood(reqs), strict=True):
        assert abs(a.logprob - b.logprob) <= 1e-4
        assert a.token_greedy == b.token_greedy and a.token_ranks == b.token_ranks
    prompts = ["12+34=", "7+8=", "5+5="]
    assert hf_lm.generate(prompts, stop=["\n"], max_new_tokens=5) == our_lm.generate(
        prompts, stop=["\n"], max_new_tokens=5
    )
    check_language_model_contract(hf_lm, atol=1e-4)


@pytest.mark.parametrize("kind", ["gpt2", "gpt_neox"])
def test_local_random_models_pass_contract(tmp_path, kind) -> None:
    lm = HFLanguageModel.from_pretrained(_save_random(tmp_path, kind))
    check_language_model_contract(lm, atol=1e-4)


@pytest.mark.parametrize("kind", ["gpt2", "gpt_neox"])
def test_hooks_on_hf_models(tmp_path, kind) -> None:
    hf_model, _ = load_hf_causal_lm(_save_random(tmp_path, kind))
    hooked = HookedHFModel(hf_model)
    idx = torch.randint(4, 17, (2, 10))
    plain = hooked(idx)
    logits, cache = hooked.run_with_cache(idx)
    torch.testing.assert_close(logits, plain)
    for i in range(2):
        assert cache[f"blocks.{i}.hook_resid_post"].shape == (2, 10, 16)
        assert cache[f"blocks.{i}.mlp.hook_post"].shape == (2, 10, 32 if kind == "gpt_neox" else 64)
        pattern = cache[f"blocks.{i}.attn.hook_pattern"]
        assert pattern.shape == (2, 2, 10, 10)
        torch.testing.assert_close(pattern.sum(-1), torch.ones(2, 2, 10))
        assert torch.all(pattern.triu(1) == 0)  # causal
    # block i+1 reads what block i wrote
    torch.testing.assert_close(cache["blocks.1.hook_resid_pre"], cache["blocks.0.hook_resid_post"])
    # zeroing an MLP's output through its hook point changes the logits; removing the hook restores them
    ablated = hooked.run_with_hooks(
        idx, fwd_hooks=[("blocks.0.hook_mlp_out", lambda x, h: torch.zeros_like(x))]
    )
    assert (ablated - plain).abs().max() > 1e-4
    torch.testing.assert_close(hooked(idx), plain)


def test_missing_model_is_a_user_error(tmp_path) -> None:
    from emergence.errors import UserError

    with pytest.raises(UserError, match="cannot load Hugging Face model"):
        load_hf_causal_lm(str(tmp_path / "nothing-here"))
