"""Families: analytic parameter counts match built models; FLOPs; presets; geometric families."""

from __future__ import annotations

import math

import pytest

from emergence.errors import UserError
from emergence.models.families import PRESETS, count_params, flops_per_token, geometric_family, preset
from emergence.models.gpt import GPT, GPTConfig


def built(cfg: GPTConfig) -> int:
    return sum(p.numel() for p in GPT(cfg).parameters())  # parameters() yields a tied weight once


def built_non_embedding(cfg: GPTConfig) -> int:
    model = GPT(cfg)
    embedding = {id(model.embed.weight), id(model.W_pos), id(model.unembed.weight)}
    return sum(p.numel() for p in model.parameters() if id(p) not in embedding)


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"tie_embeddings": False},
        {"bias": False},
        {"attn_only": True},
        {"attn_only": True, "bias": False, "tie_embeddings": False},
        {"norm": "none", "act": "relu", "tie_embeddings": False},
        {"d_mlp": 40},
    ],
)
def test_count_params_matches_the_built_model(flags: dict[str, object]) -> None:
    cfg = GPTConfig(vocab_size=23, n_layer=3, n_head=4, d_model=32, n_ctx=19, **flags)  # type: ignore[arg-type]
    assert count_params(cfg) == built(cfg)
    assert count_params(cfg, non_embedding=True) == built_non_embedding(cfg)


def test_non_embedding_count_ignores_vocabulary_context_and_tying() -> None:
    a = GPTConfig(vocab_size=23, n_layer=2, n_head=2, d_model=16, n_ctx=8)
    b = GPTConfig(vocab_size=500, n_layer=2, n_head=2, d_model=16, n_ctx=64, tie_embeddings=False)
    assert count_params(a, non_embedding=True) == count_params(b, non_embedding=True)
    # b adds an untied unembedding and a larger vocabulary and context: (2·500 − 23)·D + (64 − 8)·D.
    assert count_params(b) - count_params(a) == (2 * 500 - 23) * 16 + (64 - 8) * 16


@pytest.mark.parametrize("name", [n for n in PRESETS if n != "gpt2"])
def test_presets_match_their_commented_counts(name: str) -> None:
    cfg = preset(name, vocab_size=65, n_ctx=64)
    d, layers = cfg.d_model, cfg.n_layer
    assert count_params(cfg, non_embedding=True) == layers * (12 * d * d + 13 * d) + 2 * d
    if count_params(cfg) < 3_000_000:  # building the larger presets only costs time; the formula is shared
        assert count_params(cfg) == built(cfg)


def test_preset_comment_values() -> None:
    # The numbers written beside the table.
    expected = {"nano": 12_768, "micro": 100_096, "small": 10_647_552, "gpt2": 85_056_000}
    for name, n in expected.items():
        assert count_params(preset(name, vocab_size=65, n_ctx=64), non_embedding=True) == n
    # GPT-2 small with its own vocabulary and context is the familiar 124M.
    assert count_params(preset("gpt2", vocab_size=50257, n_ctx=1024)) == 124_439_808


def test_unknown_preset_suggests() -> None:
    with pytest.raises(UserError, match="did you mean 'micro'"):
        preset("micr", vocab_size=65, n_ctx=64)


def test_flops_per_token() -> None:
    cfg = GPTConfig(vocab_size=65, n_layer=2, n_head=2, d_model=64, n_ctx=128)
    n = count_params(cfg, non_embedding=True)
    assert flops_per_token(cfg) == 6 * n + 12 * 2 * 128 * 64
    assert flops_per_token(cfg, seq_len=10) == 6 * n + 12 * 2 * 10 * 64


@pytest.mark.parametrize("tied", [True, False])
def test_flops_per_token_with_the_output_layer_counts_as_nanogpt(tied: bool) -> None:
    """nanoGPT's estimate_mfu: N = all parameters but the position embeddings (its models are tied)."""
    cfg = GPTConfig(vocab_size=65, n_layer=2, n_head=4, d_model=64, n_ctx=128, tie_embeddings=tied)
    model = GPT(cfg)
    n_nanogpt = sum(p.numel() for p in model.parameters()) - model.W_pos.numel()
    if not tied:  # an untied input embedding is a lookup, not a matmul: only the output layer does work
        n_nanogpt -= model.embed.weight.numel()
    assert flops_per_token(cfg, output_layer=True) == 6 * n_nanogpt + 12 * 2 * 128 * 64
    assert flops_per_token(cfg, output_layer=True) - flops_per_token(cfg) == 6 * 65 * 64


@pytest.mark.parametrize("scale", ["width", "depth", "both"])
def test_geometric_family_hits_targets(scale: str) -> None:
    lo, hi, n = (3e5, 3e6, 4) if scale == "depth" else (2e4, 2e6, 5)
    fam = geometric_family(lo, hi, n, vocab_size=65, n_ctx=64, scale=scale)  # type: ignore[arg-type]
    assert len(fam) == n
    counts = [count_params(cfg, non_embedding=True) for _, cfg in fam]
    assert counts == sorted(counts) and len(set(counts)) == n
    targets = [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    for c, t in zip(counts, targets, strict=True):
        assert abs(math.log(c / t)) < math.log(1.6), (c, t)
    names = [name for name, _ in fam]
    assert len(set(names)) == n and all(name.startswith("gpt-") for name in names)
    if scale == "width":
        assert {cfg.n_layer for _, cfg in fam} == {4}
    if scale == "depth":
        assert {cfg.d_model for _, cfg in fam} == {128}
    for _, cfg in fam:
        assert cfg.d_model % cfg.n_head == 0 and cfg.d_head == 16


def test_geometric_family_both_keeps_aspect_and_passes_flags() -> None:
    fam = geometric_family(1e5, 1e7, 3, vocab_size=65, n_ctx=64, aspect=32, attn_only=True, bias=False)
    for _, cfg in fam:
        assert cfg.attn_only and not cfg.bias
        assert 8 <= cfg.d_model / cfg.n_layer <= 128
    total = geometric_family(1e5, 1e6, 2, vocab_size=5000, n_ctx=64, non_embedding=False)
    assert abs(math.log(count_params(total[0][1]) / 1e5)) < math.log(1.5)


def test_geometric_family_errors() -> None:
    with pytest.raises(UserError, match="same shape"):
        geometric_family(1e4, 1.1e4, 5, vocab_size=65, n_ctx=64, scale="width")
    with pytest.raises(UserError, match="min_params"):
        geometric_family(1e6, 1e5, 3, vocab_size=65, n_ctx=64)
    with pytest.raises(UserError, match="d_head"):
        geometric_family(1e5, 1e6, 3, vocab_size=65, n_ctx=64, scale="depth", d_model=100)
