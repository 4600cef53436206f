"""Attention analysis: patterns and heat maps, head scores (previous-token, duplicate, induction, copying),
the in-context-learning score and the logit lens.

Everything reads activations through hooks (`blocks.{i}.attn.hook_pattern` (B,H,Tq,Tk),
`blocks.{i}.hook_resid_post` (B,T,D)); weights are read from the model's parameters only for the copying
score, whose slicing of the fused projections is documented in `head_ov_weights`.

Head detection follows Olsson et al. (2022) on `[BOS, r_1..r_T, r_1..r_T]` random tokens (REFERENCES §7):

    position   0    1 .. T       T+1 .. 2T
    token     BOS   r_1 .. r_T   r_1 .. r_T

At a query T+j (second r_j) a previous-token head attends to T+j−1 (offset 1), a duplicate-token head to the
first r_j at j (offset T), and an induction head to the token after it, j+1 (offset T−1). A score is the mean
of the pattern's diagonal at that offset over the queries of the second half.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from emergence.errors import UserError

# Offsets (query − key) that define each score on a repeated random sequence with a span of T tokens.
SCORE_OFFSETS = {"previous_token": lambda T: 1, "duplicate_token": lambda T: T, "induction": lambda T: T - 1}


def repeated_random_tokens(
    vocab_size: int,
    span: int,
    batch: int,
    bos_id: int,
    generator: torch.Generator | None = None,
    low: int = 0,
) -> torch.Tensor:
    """`[BOS, r_1..r_T, r_1..r_T]` with r uniform in [low, vocab_size) → (batch, 1 + 2·span) long."""
    if span < 2 or low >= vocab_size:
        raise UserError(f"repeated_random_tokens: need span ≥ 2 and low < vocab_size, got {span}, {low}")
    r = torch.randint(low, vocab_size, (batch, span), generator=generator)  # (B, T)
    bos = torch.full((batch, 1), bos_id, dtype=torch.long)
    return torch.cat([bos, r, r], dim=1)  # (B, 1 + 2T)


def attention_patterns(model: Any, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Attention patterns of every layer through `hook_pattern`: a list of L tensors (B,H,Tq,Tk)."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("attn.hook_pattern"))
    return [cache[f"blocks.{i}.attn.hook_pattern"] for i in range(len(model.blocks))]


def head_scores(model: Any, tokens: torch.Tensor, span: int) -> dict[str, np.ndarray]:
    """Previous-token, duplicate-token and induction scores (L,H) on repeated random tokens of `span`, and
    each head's attention to BOS (`bos`), all averaged over the queries of the second copy."""
    if tokens.shape[1] != 1 + 2 * span:
        raise UserError(f"head_scores: tokens have length {tokens.shape[1]}, expected 1 + 2·{span}")
    patterns = attention_patterns(model, tokens)
    queries = torch.arange(span + 1, 2 * span + 1)  # the second copy, positions T+1 .. 2T
    out = {}
    for name, offset in SCORE_OFFSETS.items():
        keys = queries - offset(span)
        rows = [p[:, :, queries, keys].mean(dim=(0, 2)) for p in patterns]  # L × (H,)
        out[name] = torch.stack(rows).double().numpy()  # (L, H)
    # Attention parked on BOS (an "attention sink"): a head that sends most of its mass there writes a
    # near-constant vector, and what little it spreads elsewhere is all its output varies with.
    out["bos"] = torch.stack([p[:, :, queries, 0].mean(dim=(0, 2)) for p in patterns]).double().numpy()
    return out


def head_ov_weights(model: Any, layer: int, head: int) -> tuple[torch.Tensor, torch.Tensor]:
    """W_V^h (D,Dh) and W_O^h (Dh,D) of one head, sliced from the fused projections.

    `attn.qkv` is an nn.Linear with weight (3D, D) whose output splits into q | k | v, each viewed as (H, Dh):
    rows 2D + h·Dh … 2D + (h+1)·Dh of the weight are head h's value map, so v_h = x @ W_V^h with
    W_V^h = weight[2D + h·Dh : 2D + (h+1)·Dh].T. `attn.out` has weight (D, D) acting on the concatenated heads
    z (B,T,H·Dh): columns h·Dh … (h+1)·Dh are head h's share, W_O^h = out.weight[:, h·Dh : (h+1)·Dh].T.
    """
    attn = model.blocks[layer].attn
    D, Dh = model.cfg.d_model, model.cfg.d_head
    w_v = attn.qkv.weight[2 * D + head * Dh : 2 * D + (head + 1) * Dh].T  # (D, Dh)
    w_o = attn.out.weight[:, head * Dh : (head + 1) * Dh].T  # (Dh, D)
    return w_v, w_o


def copying_scores(model: Any, token_ids: torch.Tensor | None = None) -> np.ndarray:
    """Eigenvalue positivity Σλ/Σ|λ| of each head's OV circuit W_E W_V^h W_O^h W_U (L,H) (Elhage et al. 2021).

    The V×V circuit's non-zero eigenvalues equal those of the Dh×Dh product W_O^h W_U W_E W_V^h (cyclic
    permutation), so the whole vocabulary costs nothing; `token_ids` restricts it to a subset (e.g. without
    special tokens). LayerNorm gains (ln1 of the block, ln_final) are folded in; their centring is ignored.
    """
    with torch.no_grad():
        w_e = model.W_E.double()  # (V, D)
        w_u = model.W_U.double().T  # (D, V): logits = x @ W_U
        if model.ln_final.weight is not None:
            w_u = model.ln_final.weight.double()[:, None] * w_u
        if token_ids is not None:
            w_e, w_u = w_e[token_ids], w_u[:, token_ids]
        L, H = model.cfg.n_layer, model.cfg.n_head
        out = np.zeros((L, H))
        for layer in range(L):
            ln1 = model.blocks[layer].ln1.weight
            w_e_l = w_e * ln1.double()[None, :] if ln1 is not None else w_e
            ue = w_u @ w_e_l  # (D, D): W_U W_E (cyclic order)
            for h in range(H):
                w_v, w_o = head_ov_weights(model, layer, h)
                m = w_o.double() @ ue @ w_v.double()  # (Dh, Dh) = W_O^h W_U W_E W_V^h
                lam = torch.linalg.eigvals(m)
                denom = float(lam.abs().sum())
                out[layer, h] = float(lam.real.sum()) / denom if denom > 0 else 0.0
    return out


def token_losses(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy at every position (B, T−1): entry t is the loss of predicting token t+1."""
    with torch.no_grad():
        logits = model(tokens)  # (B, T, V)
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")  # (B, T−1)


def in_context_learning_score(
    model: Any, tokens: torch.Tensor, early_frac: float = 50 / 512, late_frac: float = 500 / 512
) -> dict[str, Any]:
    """Loss at a late token minus loss at an early token (Olsson et al. 2022: tokens 500 and 50 of 512).

    Positions scale with the sequence length; a negative score means later tokens are predicted better
    thanks to the context.
    """
    losses = token_losses(model, tokens)  # (B, T−1); column p−1 predicts token p
    T = tokens.shape[1]
    early = max(1, min(T - 1, round(early_frac * T)))
    late = max(1, min(T - 1, round(late_frac * T)))
    le, ll = float(losses[:, early - 1].mean()), float(losses[:, late - 1].mean())
    return {
        "score": ll - le,
        "early_position": early,
        "late_position": late,
        "loss_early": le,
        "loss_late": ll,
    }


def example_icl_score(
    model: Any,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    early_frac: float = 50 / 512,
    late_frac: float = 500 / 512,
) -> dict[str, Any]:
    """The ICL score on right-padded sequences of unequal length, positions scaled to each row's length.

    Olsson et al. (2022) take the loss at token 500 minus the loss at token 50 of 512-token contexts, averaged
    over dataset examples (REFERENCES §7). Here every row is one dataset example (`lengths` real tokens, the
    rest padding), and its early/late positions are the same fractions of its own length, so that a short and
    a long example are both measured early and late in their context. `early_position`/`late_position`
    report the mean positions.
    """
    losses = token_losses(model, tokens)  # (B, T−1); column p−1 predicts token p
    n = lengths.double()
    early = (early_frac * n).round().clamp(1, None).minimum(n - 1).long()  # (B,)
    late = (late_frac * n).round().clamp(1, None).minimum(n - 1).long()  # (B,)
    rows = torch.arange(tokens.shape[0])
    le = float(losses[rows, early - 1].mean())
    ll = float(losses[rows, late - 1].mean())
    return {
        "score": ll - le,
        "early_position": float(early.double().mean()),
        "late_position": float(late.double().mean()),
        "loss_early": le,
        "loss_late": ll,
    }


def logit_lens(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Logits read from the residual stream after the embedding and after every block (L+1, B, T, V).

    The final LayerNorm is applied afresh to each residual stream (its own mean and variance), not with the
    scale cached from the last layer, which is the known TransformerLens pitfall (REFERENCES §10).
    """
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(len(model.blocks))]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=names)
        return torch.stack([model.unembed(model.ln_final(cache[n])) for n in names])  # (L+1, B, T, V)


def logit_lens_losses(model: Any, tokens: torch.Tensor) -> list[float]:
    """Mean next-token loss of the logit-lens readout at each depth (embedding, then after each block)."""
    lens = logit_lens(model, tokens)  # (L+1, B, T, V)
    target = tokens[:, 1:]
    return [float(F.cross_entropy(lg[:, :-1].transpose(1, 2), target)) for lg in lens]


def plot_attention(
    pattern: torch.Tensor,
    labels: list[str] | None = None,
    title: str = "",
    path: str | Path | None = None,
) -> Figure:
    """Heat map of one head's pattern (Tq,Tk) for one prompt; writes a PNG when `path` is given."""
    p = pattern.detach().double().cpu().numpy()
    if p.ndim != 2:
        raise UserError(f"plot_attention: expected a (Tq, Tk) pattern, got shape {p.shape}")
    size = min(12.0, 2.0 + 0.25 * p.shape[1])
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot()
    im = ax.imshow(p, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    if labels is not None and len(labels) <= 64:
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def plot_head(
    model: Any, tokens: torch.Tensor, layer: int, head: int, labels: list[str] | None = None, path: Any = None
) -> Figure:
    """Heat map of head `head` in `layer` for one prompt (tokens (1,T) or (T,))."""
    if tokens.dim() == 1:
        tokens = tokens[None]
    if not (0 <= layer < len(model.blocks) and 0 <= head < model.cfg.n_head):
        raise UserError(
            f"plot_head: no head {layer}.{head} in a {len(model.blocks)}×{model.cfg.n_head} model"
        )
    pattern = attention_patterns(model, tokens[:1])[layer][0, head]  # (Tq, Tk)
    return plot_attention(pattern, labels, title=f"layer {layer} head {head}", path=path)


def plot_layer(
    model: Any, tokens: torch.Tensor, layer: int, labels: list[str] | None = None, path: Any = None
) -> Figure:
    """All heads of `layer` for one prompt side by side (one heat map per head)."""
    if tokens.dim() == 1:
        tokens = tokens[None]
    if not 0 <= layer < len(model.blocks):
        raise UserError(f"plot_layer: no layer {layer} in a {len(model.blocks)}-layer model")
    pattern = attention_patterns(model, tokens[:1])[layer][0].detach().double().cpu().numpy()  # (H, Tq, Tk)
    H = pattern.shape[0]
    cols = min(H, 4)
    rows = -(-H // cols)
    fig = Figure(figsize=(3.2 * cols, 3.2 * rows))
    for h in range(H):
        ax = fig.add_subplot(rows, cols, h + 1)
        ax.imshow(pattern[h], cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"L{layer} H{h}", fontsize=9)
        if labels is not None and len(labels) <= 32:
            ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    return fig


def entropy_per_head(patterns: list[torch.Tensor]) -> np.ndarray:
    """Mean attention entropy in nats per head (L,H), normalised by log(#visible keys) so 1 = uniform."""
    out = []
    for p in patterns:  # (B, H, Tq, Tk)
        ent = -(p.clamp_min(1e-12).log() * p).sum(-1)  # (B, H, Tq)
        visible = torch.arange(1, p.shape[-1] + 1, dtype=p.dtype)[-p.shape[-2] :]  # causal: q+1 keys
        norm = visible.log().clamp_min(1e-12)
        out.append((ent[..., 1:] / norm[1:]).mean(dim=(0, 2)))
    return torch.stack(out).double().numpy() if out else np.zeros((0, 0))


__all__ = [
    "attention_patterns",
    "copying_scores",
    "entropy_per_head",
    "example_icl_score",
    "head_ov_weights",
    "head_scores",
    "in_context_learning_score",
    "logit_lens",
    "logit_lens_losses",
    "plot_attention",
    "plot_head",
    "plot_layer",
    "repeated_random_tokens",
    "token_losses",
]
