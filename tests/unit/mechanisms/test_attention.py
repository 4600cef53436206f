"""Attention analysis: head scores on a hand-set induction model, copying, ICL, logit lens, weight slicing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from emergence.analysis import attention as A
from emergence.errors import UserError
from emergence.models.gpt import GPT, GPTConfig

from .handset import induction_model

SPAN = 10


def rep_tokens(vocab: int = 40, batch: int = 32) -> torch.Tensor:
    return A.repeated_random_tokens(
        vocab, SPAN, batch, bos_id=0, generator=torch.Generator().manual_seed(0), low=1
    )


def test_repeated_random_tokens_layout() -> None:
    t = rep_tokens()
    assert t.shape == (32, 1 + 2 * SPAN)
    assert (t[:, 0] == 0).all() and (t[:, 1 : SPAN + 1] == t[:, SPAN + 1 :]).all() and (t[:, 1:] >= 1).all()


def test_hand_set_induction_head_is_found() -> None:
    model = induction_model(span=SPAN)
    s = A.head_scores(model, rep_tokens(), SPAN)
    assert s["previous_token"][0, 0] > 0.95  # layer 0 is the previous-token head
    assert (
        s["induction"][1, 0] > 0.8
    )  # layer 1 is the induction head (random repeats within a span dilute it)
    assert s["induction"][0, 0] < 0.1 and s["previous_token"][1, 0] < 0.2
    assert s["duplicate_token"].max() < 0.2
    assert s["bos"].shape == s["induction"].shape and ((s["bos"] >= 0) & (s["bos"] <= 1)).all()
    # Each head's masses at the three offsets and on BOS are parts of one distribution.
    assert (s["previous_token"] + s["induction"] + s["duplicate_token"] + s["bos"] <= 1 + 1e-6).all()


def test_bos_score_is_the_mass_on_the_first_position() -> None:
    model = induction_model(span=SPAN)
    tokens = rep_tokens()
    patterns = A.attention_patterns(model, tokens)
    s = A.head_scores(model, tokens, SPAN)
    expected = patterns[1][:, 0, SPAN + 1 :, 0].mean().item()  # layer 1, head 0, second-copy queries
    assert abs(s["bos"][1, 0] - expected) < 1e-6


def test_no_induction_head_in_one_layer_models() -> None:
    for model in (
        induction_model(span=SPAN, n_layer=1),
        GPT(GPTConfig(40, 1, 4, 32, n_ctx=21, attn_only=True)),
    ):
        s = A.head_scores(model.eval(), rep_tokens(), SPAN)
        assert (s["induction"] < 0.4).all(), s["induction"]


def test_copying_score_of_identity_ov_circuit() -> None:
    c = A.copying_scores(induction_model(span=SPAN))
    assert c[1, 0] == pytest.approx(1.0, abs=1e-6)  # layer 1 copies tokens: all eigenvalues positive
    assert c[0, 0] == pytest.approx(0.0, abs=1e-6)  # layer 0 writes to a slot the unembedding never reads
    neg = induction_model(span=SPAN)
    with torch.no_grad():
        neg.blocks[1].attn.out.weight.neg_()
    assert A.copying_scores(neg)[1, 0] == pytest.approx(-1.0, abs=1e-6)


def test_head_ov_slicing_matches_the_hooks() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(30, 2, 4, 32, n_ctx=16, norm="none")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # non-zero biases
    tokens = torch.randint(0, 30, (2, 16))
    names = [
        "blocks.1.hook_resid_pre",
        "blocks.1.attn.hook_v",
        "blocks.1.attn.hook_z",
        "blocks.1.hook_attn_out",
    ]
    _, cache = model.run_with_cache(tokens, names_filter=names)
    D, Dh = 32, 8
    attn = model.blocks[1].attn
    out = attn.out.bias.clone()
    for h in range(4):
        w_v, w_o = A.head_ov_weights(model, 1, h)
        b_v = attn.qkv.bias[2 * D + h * Dh : 2 * D + (h + 1) * Dh]
        v = cache["blocks.1.hook_resid_pre"] @ w_v + b_v
        torch.testing.assert_close(v, cache["blocks.1.attn.hook_v"][:, :, h], atol=1e-5, rtol=1e-5)
        out = out + cache["blocks.1.attn.hook_z"][:, :, h] @ w_o
    torch.testing.assert_close(out, cache["blocks.1.hook_attn_out"], atol=1e-5, rtol=1e-5)


def test_icl_score_negative_for_induction_model_on_repeats() -> None:
    model = induction_model(span=SPAN)
    icl = A.in_context_learning_score(model, rep_tokens(), early_frac=0.25, late_frac=0.95)
    assert icl["late_position"] > SPAN >= icl["early_position"]
    assert icl["score"] < -1.0, icl


def test_logit_lens_last_layer_equals_logits_with_fresh_layernorm() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(50, 3, 2, 32, n_ctx=24)).eval()
    with torch.no_grad():
        model.ln_final.weight.mul_(torch.rand(32) + 0.5)
        model.ln_final.bias.add_(0.1)
    tokens = torch.randint(0, 50, (3, 24))
    lens = A.logit_lens(model, tokens)
    assert lens.shape == (4, 3, 24, 50)
    with torch.no_grad():
        torch.testing.assert_close(lens[-1], model(tokens), atol=1e-5, rtol=1e-5)
        _, cache = model.run_with_cache(tokens, names_filter="blocks.0.hook_resid_post")
        x = cache["blocks.0.hook_resid_post"]
        ln = model.ln_final
        manual = F.layer_norm(x, (32,), ln.weight, ln.bias, 1e-5) @ model.W_U.T  # its own statistics
    torch.testing.assert_close(lens[1], manual, atol=1e-5, rtol=1e-5)
    losses = A.logit_lens_losses(model, tokens)
    assert len(losses) == 4 and all(np.isfinite(losses))


def test_plot_head_writes_png(tmp_path: Path) -> None:
    model = induction_model(span=SPAN)
    path = tmp_path / "figs" / "l1h0.png"
    fig = A.plot_head(model, rep_tokens(batch=1)[0], 1, 0, labels=[str(i) for i in range(21)], path=path)
    assert path.stat().st_size > 1000 and fig.axes
    with pytest.raises(UserError):
        A.plot_head(model, rep_tokens(batch=1), 5, 0)
    grid = tmp_path / "layer.png"
    fig = A.plot_layer(GPT(GPTConfig(40, 2, 6, 48, n_ctx=21)), rep_tokens(batch=1)[0], 1, path=grid)
    assert len(fig.axes) == 6 and grid.stat().st_size > 1000


def test_attention_entropy_uniform_and_sharp() -> None:
    T = 6
    uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
    sharp = torch.eye(T)
    ent = A.entropy_per_head([torch.stack([uniform, sharp])[None]])  # (1, 2)
    assert ent[0, 0] == pytest.approx(1.0, abs=1e-5) and ent[0, 1] == pytest.approx(0.0, abs=1e-5)
