"""A GPT-2-architecture transformer, readable top to bottom, with hook points and a key/value cache.

    idx (B,T) ─► embed + W_pos ─► [block] × L ─► ln_final ─► unembed ─► logits (B,T,V)

    block:  x ─► ln1 ─► attn ─► (+) ─► ln2 ─► mlp ─► (+) ─►
            └──────────────────┘ └─────────────────┘          (pre-LayerNorm residual stream)

The same class serves every study: `attn_only` drops the MLPs (induction heads, Olsson et al. 2022),
`causal=False` makes a bidirectional encoder (masked-LM), `norm="none"`, `act="relu"` and
`tie_embeddings=False` give the grokking model of Nanda et al. 2023 (REFERENCES §6).

Every analysable activation passes through a `HookPoint` named by its module path with the TransformerLens
vocabulary (`blocks.0.attn.hook_pattern`, …; REFERENCES §10). The attention has two paths that compute the
same function: `F.scaled_dot_product_attention` (fast, fused) when nobody listens to the attention scores or
pattern, and an explicit softmax(QKᵀ/√Dh)·V when a hook on `hook_attn_scores`/`hook_pattern` is attached, so
the hook can read or replace them.

Shapes: B batch, T time, D model width, H heads, Dh head width, V vocabulary, L layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from emergence.errors import UserError
from emergence.models.hooks import HookedModule, HookPoint
from emergence.models.kernels import gelu_tanh

# GPT-2's LayerNorm epsilon; kept fixed so that weights move between this model and Hugging Face's unchanged.
LN_EPS = 1e-5
# GPT-2 initialisation (Radford et al. 2019): N(0, 0.02), residual projections scaled by 1/sqrt(2L).
INIT_STD = 0.02


@dataclass(frozen=True)
class GPTConfig:
    """Shape and flags of a GPT; serialisable (plain values and `Literal` strings only)."""

    vocab_size: int = 65  # V: tokenizer vocabulary size (65 = a small character set plus specials)
    n_layer: int = 2  # L: number of transformer blocks
    n_head: int = 4  # H: attention heads per block
    d_model: int = 128  # D: residual stream width; must be divisible by n_head
    d_mlp: int | None = None  # MLP hidden width; None means 4·d_model as in GPT-2
    n_ctx: int = 256  # context length: the number of learned positions
    dropout: float = 0.0  # on embeddings, attention weights and residual branches; 0 suits small data studies
    bias: bool = True  # biases in linear layers and LayerNorms (GPT-2 has them; nanoGPT shows they can go)
    attn_only: bool = False  # drop the MLP sublayers (induction-head studies)
    causal: bool = True  # False: bidirectional encoder for masked-LM objectives
    tie_embeddings: bool = True  # unembedding shares the token embedding matrix (GPT-2); False for grokking
    norm: Literal["layernorm", "none"] = (
        "layernorm"  # "none" removes every LayerNorm (grokking, Nanda et al.)
    )
    act: Literal["gelu_tanh", "relu"] = "gelu_tanh"  # MLP non-linearity; GPT-2 uses the tanh GELU

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_head", "d_model", "n_ctx"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.d_mlp is not None and (
            isinstance(self.d_mlp, bool) or not isinstance(self.d_mlp, int) or self.d_mlp <= 0
        ):
            raise ValueError(f"d_mlp: must be a positive integer or null, got {self.d_mlp!r}")
        if self.d_model % self.n_head != 0:
            raise ValueError(f"d_model: {self.d_model} is not divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout!r}")
        if self.norm not in ("layernorm", "none"):
            raise ValueError(f"norm: must be 'layernorm' or 'none', got {self.norm!r}")
        if self.act not in ("gelu_tanh", "relu"):
            raise ValueError(f"act: must be 'gelu_tanh' or 'relu', got {self.act!r}")

    @property
    def d_head(self) -> int:
        """Dh: width of one attention head."""
        return self.d_model // self.n_head

    @property
    def mlp_width(self) -> int:
        """The MLP hidden width actually used (d_mlp, or 4·d_model when d_mlp is None)."""
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model


class KVCache:
    """Keys and values of the positions already seen, per layer, for incremental decoding.

    Each layer holds K and V of shape (B, H, length, Dh). `GPT.forward(idx, cache=c)` reads them, appends the
    new positions and advances `length`; positions of the new tokens continue from `length`.

    The tensors are never written in place: `append` concatenates into new memory. That is what makes
    `clone` and `expand` cheap (they share the prefix tensors) and keeps a cache usable under autograd.
    """

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], length: int = 0) -> None:
        if len(keys) != len(values):
            raise ValueError("keys and values must have one entry per layer")
        self.keys = keys
        self.values = values
        self.length = length

    @property
    def batch_size(self) -> int:
        """Rows in the cache (B)."""
        return self.keys[0].shape[0]

    @property
    def n_layer(self) -> int:
        """Number of layers cached."""
        return len(self.keys)

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new (B, H, T, Dh) keys/values to `layer`; return all keys/values (B, H, length+T, Dh)."""
        k_all = torch.cat((self.keys[layer], k), dim=2)
        v_all = torch.cat((self.values[layer], v), dim=2)
        self.keys[layer], self.values[layer] = k_all, v_all
        return k_all, v_all

    def expand(self, batch_size: int) -> KVCache:
        """A cache of `batch_size` rows sharing this batch-1 prefix (views, no copy until the next append)."""
        if self.batch_size == batch_size:
            return self.clone()
        if batch_size < 1:
            raise ValueError(f"expand: batch_size must be positive, got {batch_size}")
        if self.batch_size != 1:
            raise ValueError(
                f"expand: only a batch-1 cache can be expanded, this one has {self.batch_size} rows"
            )
        # (1, H, t, Dh) -> (B, H, t, Dh) with stride 0 along B; `append` concatenates into fresh memory,
        # so the shared prefix is never written through the broadcast view.
        return KVCache(
            [k.expand(batch_size, -1, -1, -1) for k in self.keys],
            [v.expand(batch_size, -1, -1, -1) for v in self.values],
            self.length,
        )

    def clone(self) -> KVCache:
        """An independent cache: appending to one does not change the other (prefix tensors are shared)."""
        return KVCache(list(self.keys), list(self.values), self.length)


class LayerNorm(nn.Module):
    """LayerNorm with optional bias (identity when not `enabled`); the output passes `hook_normalized`."""

    def __init__(self, d_model: int, enabled: bool, bias: bool) -> None:
        super().__init__()
        self.enabled = enabled
        self.weight = nn.Parameter(torch.ones(d_model)) if enabled else None
        self.bias = nn.Parameter(torch.zeros(d_model)) if enabled and bias else None
        self.hook_normalized = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, LN_EPS)
        return self.hook_normalized(x)


class Attention(nn.Module):
    """Multi-head self-attention with a fused QKV projection."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.d_head = cfg.d_head
        self.causal = cfg.causal
        self.dropout = cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.hook_q = HookPoint()  # (B, T, H, Dh)
        self.hook_k = HookPoint()  # (B, T, H, Dh)
        self.hook_v = HookPoint()  # (B, T, H, Dh)
        self.hook_attn_scores = HookPoint()  # (B, H, Tq, Tk), masked positions hold -inf
        self.hook_pattern = HookPoint()  # (B, H, Tq, Tk), rows sum to 1
        self.hook_z = HookPoint()  # (B, T, H, Dh): per-head outputs before the output projection

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0, last_query: bool = False
    ) -> torch.Tensor:
        """Attend over x (B,T,D) and the cached positions; with `last_query` only the last one queries."""
        B, T, D = x.shape
        H, Dh = self.n_head, self.d_head
        q, k, v = self.qkv(x).split(D, dim=2)  # 3 × (B, T, D), views into one matmul's output
        if last_query:
            q = q[:, -1:]  # (B, 1, D)
        Tq = q.shape[1]
        # Views, not copies: splitting D into (H, Dh) and swapping T/H only changes strides.
        q = self.hook_q(q.view(B, Tq, H, Dh)).transpose(1, 2)  # (B, H, Tq, Dh)
        k = self.hook_k(k.view(B, T, H, Dh)).transpose(1, 2)  # (B, H, T, Dh)
        v = self.hook_v(v.view(B, T, H, Dh)).transpose(1, 2)  # (B, H, T, Dh)
        if cache is not None:
            k, v = cache.append(layer, k, v)  # (B, H, Tk, Dh) with Tk = cache.length + T
        Tk = k.shape[2]

        # Query i sits at absolute position Tk - Tq + i and may see keys 0..Tk - Tq + i. A full square block
        # is the plain causal mask (SDPA's is_causal); a single last query sees everything (no mask); a chunk
        # after a cached prefix needs an explicit mask because is_causal aligns the triangle top-left.
        is_causal = self.causal and Tq == Tk and Tq > 1
        mask = None
        if self.causal and Tq < Tk and Tq > 1:
            offset = Tk - Tq
            mask = torch.ones(Tq, Tk, dtype=torch.bool, device=x.device).tril(diagonal=offset)  # (Tq, Tk)
        p = self.dropout if self.training else 0.0

        if self.hook_attn_scores.active or self.hook_pattern.active:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(Dh))  # (B, H, Tq, Tk)
            if is_causal:
                mask = torch.ones(Tq, Tk, dtype=torch.bool, device=x.device).tril()
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            scores = self.hook_attn_scores(scores)
            pattern = self.hook_pattern(scores.softmax(dim=-1))
            z = F.dropout(pattern, p, self.training) @ v  # (B, H, Tq, Dh)
        else:
            z = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal)
        z = self.hook_z(z.transpose(1, 2))  # (B, Tq, H, Dh)
        return self.out(z.reshape(B, Tq, D))  # (B, Tq, D): one copy to make heads contiguous


class MLP(nn.Module):
    """Position-wise feed-forward network: fc_in → activation → fc_out."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc_in = nn.Linear(cfg.d_model, cfg.mlp_width, bias=cfg.bias)
        self.fc_out = nn.Linear(cfg.mlp_width, cfg.d_model, bias=cfg.bias)
        self.relu = cfg.act == "relu"
        self.hook_pre = HookPoint()  # (B, T, d_mlp) before the non-linearity
        self.hook_post = HookPoint()  # (B, T, d_mlp) after it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hook_pre(self.fc_in(x))
        h = F.relu(h) if self.relu else gelu_tanh(h, self.training)
        return self.fc_out(self.hook_post(h))


class Block(nn.Module):
    """One pre-LayerNorm transformer block (attention, then MLP unless `attn_only`)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        use_norm = cfg.norm == "layernorm"
        self.ln1 = LayerNorm(cfg.d_model, use_norm, cfg.bias)
        self.attn = Attention(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.hook_resid_pre = HookPoint()  # (B, T, D)
        self.hook_attn_out = HookPoint()  # (B, T, D)
        self.hook_resid_post = HookPoint()  # (B, T, D)
        self.attn_only = cfg.attn_only
        if not cfg.attn_only:
            # As in TransformerLens, attention-only blocks have no resid_mid: resid_post follows attention.
            self.hook_resid_mid = HookPoint()  # (B, T, D)
            self.ln2 = LayerNorm(cfg.d_model, use_norm, cfg.bias)
            self.mlp = MLP(cfg)
            self.hook_mlp_out = HookPoint()  # (B, T, D)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0, last_only: bool = False
    ) -> torch.Tensor:
        """x (B,T,D) → (B,T,D), or (B,1,D) with `last_only` (only the last position is carried forward)."""
        x = self.hook_resid_pre(x)
        a = self.hook_attn_out(self.drop(self.attn(self.ln1(x), cache, layer, last_only)))
        if last_only:
            x = x[:, -1:]  # (B, 1, D): later positions need no MLP once their keys/values exist
        x = x + a
        if not self.attn_only:
            x = self.hook_resid_mid(x)
            x = x + self.hook_mlp_out(self.drop(self.mlp(self.ln2(x))))
        return self.hook_resid_post(x)


class GPT(HookedModule):
    """GPT-2-architecture decoder (or bidirectional encoder with `causal=False`) with hook points."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)  # W_E (V, D)
        self.W_pos = nn.Parameter(
            torch.empty(cfg.n_ctx, cfg.d_model)
        )  # (n_ctx, D) learned absolute positions
        self.hook_embed = HookPoint()  # (B, T, D)
        self.hook_pos_embed = HookPoint()  # (B, T, D)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_final = LayerNorm(cfg.d_model, cfg.norm == "layernorm", cfg.bias)
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)  # W_U (V, D) as stored by nn.Linear
        if cfg.tie_embeddings:
            self.unembed.weight = self.embed.weight  # one Parameter, two names (as GPT-2 and nanoGPT)
        self._init_weights()
        self.setup_hooks()
        # Hook points that see the last block's per-position shapes: if none is listened to, `last_only` may
        # skip the last block's MLP and queries at earlier positions without anybody noticing.
        self._tail_hooks = [m for m in self.blocks[-1].modules() if isinstance(m, HookPoint)]
        self._tail_hooks.append(self.ln_final.hook_normalized)

    def _init_weights(self) -> None:
        resid_std = INIT_STD / math.sqrt(2 * self.cfg.n_layer)
        for name, p in self.named_parameters():  # shared (tied) parameters appear once
            if name.endswith(("attn.out.weight", "mlp.fc_out.weight")):
                nn.init.normal_(p, 0.0, resid_std)
            elif p.dim() >= 2:
                nn.init.normal_(p, 0.0, INIT_STD)
            elif name.endswith("weight"):
                nn.init.ones_(p)  # LayerNorm gain
            else:
                nn.init.zeros_(p)  # biases

    @property
    def W_E(self) -> torch.Tensor:
        """Token embedding matrix (V, D)."""
        return self.embed.weight

    @property
    def W_U(self) -> torch.Tensor:
        """Unembedding matrix (V, D) (logits = x @ W_Uᵀ); the same tensor as W_E when tied."""
        return self.unembed.weight

    def new_cache(self, batch_size: int) -> KVCache:
        """An empty key/value cache for `batch_size` rows, on the model's device and dtype."""
        p = self.W_pos
        empty = (batch_size, self.cfg.n_head, 0, self.cfg.d_head)  # (B, H, 0, Dh)
        return KVCache(
            [p.new_empty(empty) for _ in range(self.cfg.n_layer)],
            [p.new_empty(empty) for _ in range(self.cfg.n_layer)],
        )

    def _trunk(self, idx: torch.Tensor, cache: KVCache | None, last_only: bool) -> torch.Tensor:
        """Token ids (B,T) → final normalised residual (B,T,D), or (B,1,D) with `last_only`."""
        if idx.dim() != 2:
            raise ValueError(
                f"idx: expected a (batch, time) tensor of token ids, got shape {tuple(idx.shape)}"
            )
        B, T = idx.shape
        past = 0
        if cache is not None:
            if not self.cfg.causal:
                raise ValueError("cache: a bidirectional (causal=False) model cannot decode incrementally")
            if cache.n_layer != self.cfg.n_layer or cache.batch_size != B:
                raise ValueError(
                    f"cache: holds {cache.n_layer} layers × {cache.batch_size} rows, "
                    f"input needs {self.cfg.n_layer} × {B}"
                )
            past = cache.length
        if past + T > self.cfg.n_ctx:
            raise UserError(
                f"sequence of {past + T} tokens ({past} cached + {T} new) exceeds the model context "
                f"n_ctx={self.cfg.n_ctx}"
            )
        tok = self.hook_embed(self.embed(idx))  # (B, T, D)
        pos = self.hook_pos_embed(self.W_pos[past : past + T].expand(B, T, -1))  # (B, T, D), a broadcast view
        x = self.drop(tok + pos)
        last = len(self.blocks) - 1
        shrink = last_only and not any(hp.active for hp in self._tail_hooks)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, shrink and i == last)
        if cache is not None:
            cache.length = past + T
        x = self.ln_final(x)
        if last_only and x.shape[1] != 1:
            x = x[:, -1:]  # (B, 1, D): the last block ran in full because a hook listens to it
        return x

    def forward(
        self, idx: torch.Tensor, cache: KVCache | None = None, last_only: bool = False
    ) -> torch.Tensor:
        """Token ids (B,T) → logits (B,T,V), or (B,1,V) for the last position only with `last_only`."""
        return self.unembed(self._trunk(idx, cache, last_only))

    def hidden(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Token ids (B,T) → final normalised residual stream (B,T,D), e.g. for classification heads."""
        return self._trunk(idx, cache, False)


def mlp_elements_per_step(model_cfg: object, sequences: int) -> int:
    """Elements of the tanh-GELU activation in one training step (all layers; full-context sequences, an
    upper bound the config alone fixes): 0 for models without one (ReLU, attention-only, recurrent)."""
    cfg = model_cfg
    if not isinstance(cfg, GPTConfig) or cfg.attn_only or cfg.act != "gelu_tanh":
        return 0
    return sequences * cfg.n_ctx * cfg.mlp_width * cfg.n_layer
