"""LSTM LM and LSTM-VAE: shapes, hooks, exact state continuation, parameter counts, ELBO, KL annealing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from emergence.corpus import Grammar, GrammarConfig, corpus_text
from emergence.models.recurrent import (
    LSTMLM,
    LSTMVAE,
    LSTMConfig,
    LSTMVAEConfig,
    count_params,
    flops_per_token,
    kl_beta,
    kl_divergence,
)
from emergence.tokenizers import CharTokenizer


@pytest.mark.parametrize(
    "cfg",
    [
        LSTMConfig(vocab_size=11, d_embed=6, d_hidden=8, n_layer=2),
        LSTMConfig(vocab_size=11, d_embed=6, d_hidden=8, n_layer=3, tie_embeddings=True),
        LSTMConfig(vocab_size=11, d_embed=8, d_hidden=8, n_layer=1, tie_embeddings=True),
    ],
)
def test_lstm_lm_counts_shapes_and_hooks(cfg: LSTMConfig) -> None:
    model = LSTMLM(cfg)
    assert count_params(cfg) == sum(p.numel() for p in model.parameters())
    non_embedding = sum(
        p.numel() for n, p in model.named_parameters() if not n.startswith(("embed", "unembed"))
    )
    assert count_params(cfg, non_embedding=True) == non_embedding
    assert flops_per_token(cfg) == 6 * non_embedding
    idx = torch.randint(0, 11, (3, 7))
    logits, cache = model.run_with_cache(idx)
    assert logits.shape == (3, 7, 11)
    expected = {"hook_embed", "hook_out", *(f"layers.{i}.hook_hidden" for i in range(cfg.n_layer))}
    assert set(cache) == expected
    assert cache["layers.0.hook_hidden"].shape == (3, 7, 8)
    assert model.hidden(idx).shape == (3, 7, cfg.d_out)
    if cfg.tie_embeddings:
        assert model.unembed.weight is model.embed.weight


def test_state_continuation_is_exact_and_hooks_can_patch() -> None:
    torch.manual_seed(0)
    model = LSTMLM(LSTMConfig(vocab_size=13, d_embed=8, d_hidden=10, n_layer=2)).double()
    idx = torch.randint(0, 13, (2, 9))
    full = model(idx)
    head, state = model.forward_state(idx[:, :4])
    tail = model(idx[:, 4:], state)
    assert torch.allclose(torch.cat([head, tail], 1), full, atol=1e-12)

    def zero(h: torch.Tensor, hook: object) -> torch.Tensor:
        return torch.zeros_like(h)

    patched = model.run_with_hooks(idx, fwd_hooks=[("layers.1.hook_hidden", zero)])
    assert torch.allclose(patched, torch.zeros_like(patched))  # untied, no bias: zero state gives zero logits


def test_lstm_lm_learns_the_grammar_corpus() -> None:
    """Training sanity: next-character loss falls well below its start in a few dozen steps."""
    torch.manual_seed(0)
    g = Grammar(GrammarConfig(max_depth=1))
    text = corpus_text(g.documents(40, seed=0))
    tok = CharTokenizer(sorted(set(text)))
    ids = torch.tensor(tok.encode(text))
    T = 48
    windows = ids[: len(ids) // (T + 1) * (T + 1)].view(-1, T + 1)  # (N, T+1)
    model = LSTMLM(LSTMConfig(vocab_size=tok.vocab_size, d_embed=24, d_hidden=48, n_layer=1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(40):
        batch = windows[torch.randint(len(windows), (16,), generator=gen)]
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, tok.vocab_size), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    start, end = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    counts = torch.bincount(ids).float()
    p = counts[counts > 0] / counts.sum()
    unigram = float(-(p * p.log()).sum())  # nats per character of a context-free character model
    # From ~ln V (uniform) to below the unigram entropy: the model has learnt to use context.
    assert end < start - 0.5 and end < unigram, (start, end, unigram)


def _vae(**kw: object) -> LSTMVAE:
    torch.manual_seed(0)
    cfg = LSTMVAEConfig(**{"vocab_size": 12, "d_embed": 6, "d_hidden": 8, "d_latent": 3, **kw})  # type: ignore[arg-type]
    return LSTMVAE(cfg)


BATCH = torch.tensor([[1, 5, 6, 7, 2, 0], [1, 8, 9, 2, 0, 0], [1, 4, 4, 4, 4, 2]])


@pytest.mark.parametrize("condition", ["init", "input", "both"])
def test_vae_counts_and_elbo_decomposition(condition: str) -> None:
    vae = _vae(condition=condition, n_layer=2)
    assert count_params(vae.cfg) == sum(p.numel() for p in vae.parameters())
    out = vae.elbo(BATCH, step=250, generator=torch.Generator().manual_seed(0))
    assert set(out) == {"recon", "kl", "beta", "loss"}
    assert float(out["beta"]) == pytest.approx(0.25)  # linear annealing over 1000 steps
    assert torch.allclose(out["loss"], out["recon"] + out["beta"] * out["kl"])
    assert float(out["kl"].detach()) >= 0 and float(out["recon"].detach()) > 0
    # Reconstruction = summed token NLL of the targets (pads excluded), averaged over sentences.
    vae.eval()
    gen = torch.Generator().manual_seed(1)
    mu, logvar = vae.encode(BATCH)
    z = vae.reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    logits, _ = vae.decode_step(BATCH[:, :-1], z, None)
    nll = F.cross_entropy(logits.transpose(1, 2), BATCH[:, 1:], reduction="none")  # (B, T-1)
    expected = (nll * (BATCH[:, 1:] != 0)).sum(1).mean()
    assert torch.allclose(vae.elbo(BATCH, generator=gen)["recon"], expected, atol=1e-6)


def test_kl_values() -> None:
    assert torch.equal(kl_divergence(torch.zeros(2, 4), torch.zeros(2, 4)), torch.zeros(2))
    mu, logvar = torch.randn(50, 4), torch.randn(50, 4)
    kl = kl_divergence(mu, logvar)
    assert bool((kl >= 0).all())
    # Closed form against torch.distributions.
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(4), torch.ones(4))
    assert torch.allclose(kl, torch.distributions.kl_divergence(q, p).sum(-1), atol=1e-5)


def test_kl_annealing_schedules() -> None:
    lin = LSTMVAEConfig(kl_schedule="linear", kl_anneal_steps=100, beta_max=1.0)
    assert [kl_beta(s, lin) for s in (0, 25, 50, 100, 1000)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    cyc = LSTMVAEConfig(kl_schedule="cyclical", kl_anneal_steps=100, kl_cycle_ratio=0.5, beta_max=2.0)
    assert [kl_beta(s, cyc) for s in (0, 25, 50, 75, 99, 100, 125)] == [0.0, 1.0, 2.0, 2.0, 2.0, 0.0, 1.0]
    const = LSTMVAEConfig(kl_schedule="constant", beta_max=0.3)
    assert kl_beta(0, const) == kl_beta(10_000, const) == 0.3
    with pytest.raises(ValueError, match="kl_schedule"):
        LSTMVAEConfig(kl_schedule="cosine")  # type: ignore[arg-type]


def test_word_dropout() -> None:
    vae = _vae(word_dropout=0.5, dropout_token=3)
    inputs = torch.cat([torch.ones(200, 1, dtype=torch.long), torch.randint(4, 12, (200, 30))], 1)
    inputs[:, -5:] = 0
    dropped = vae.drop_words(inputs, torch.Generator().manual_seed(0))
    assert torch.equal(dropped[:, 0], inputs[:, 0]) and torch.equal(dropped[:, -5:], inputs[:, -5:])
    share = float((dropped[:, 1:-5] == 3).float().mean())
    assert 0.45 < share < 0.55
    assert torch.equal(_vae(word_dropout=0.0).drop_words(inputs), inputs)


def test_vae_sampling_and_interpolation() -> None:
    vae = _vae(n_ctx=8).eval()
    a = vae.sample(4, generator=torch.Generator().manual_seed(0), max_len=6)
    b = vae.sample(4, generator=torch.Generator().manual_seed(0), max_len=6)
    assert a == b and len(a) == 4 and all(len(s) <= 6 and 2 not in s for s in a)
    path = vae.interpolate(BATCH[0, :5], BATCH[1, :4], n_steps=4)
    assert len(path) == 4
    mu_a, _ = vae.encode(BATCH[:1, :5])
    assert path[0] == vae.decode(mu_a)[0]  # the path starts at the first sentence's posterior mean
    stochastic = vae.sample(3, generator=torch.Generator().manual_seed(1), max_len=5, temperature=1.0)
    assert len(stochastic) == 3


def test_vae_trains() -> None:
    vae = _vae(word_dropout=0.0, kl_anneal_steps=10, d_hidden=16)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-2)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for step in range(60):
        out = vae.elbo(BATCH, step=step, generator=gen)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["recon"].detach()))
    assert losses[-1] < 0.5 * losses[0]
