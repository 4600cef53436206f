"""Task heads on a transformer's final hidden states: classification, regression, segment embeddings.

    idx (B,T) ─► GPT.hidden ─► (B,T,D) ─► pool ─► [dense ─► tanh] ─► dropout ─► linear ─► (B,C) or (B,)
                                          │
                         "first": position 0, the <bos> token that plays BERT's [CLS] (Devlin et al. 2019);
                                  it sees the whole sequence only in an encoder (causal=False)
                         "last":  the last real token (position lengths-1), the natural summary of a
                                  causal decoder (Radford et al. 2018 classify from the final token)
                         "mean":  the average over real tokens

Right-padded batches pass `lengths` (B,) so "last" and "mean" ignore the padding. The optional pooler
(dense + tanh) is BERT's. `SegmentEmbedding` adds BERT's sentence-A/B embeddings through the GPT's
`hook_embed` hook point, so the GPT itself needs no segment input. `ModelWithHead` joins a backbone and a
head for fine-tuning (see `models.lora` for the full / head-only / LoRA modes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

from emergence.models.gpt import GPT, INIT_STD
from emergence.models.hooks import HookPoint

Pool = Literal["first", "last", "mean"]


def pool_hidden(hidden: torch.Tensor, pool: Pool, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """(B,T,D) hidden states → (B,D): the first token, the last real token, or the mean over real tokens."""
    B, T, _ = hidden.shape
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.long, device=hidden.device)
    lengths = lengths.to(hidden.device)
    if bool((lengths < 1).any()) or bool((lengths > T).any()):
        raise ValueError(f"lengths: must be in [1, {T}], got {lengths.tolist()}")
    if pool == "first":
        return hidden[:, 0]  # (B, D)
    if pool == "last":
        return hidden[torch.arange(B, device=hidden.device), lengths - 1]  # (B, D)
    if pool == "mean":
        real = (torch.arange(T, device=hidden.device)[None, :] < lengths[:, None]).to(hidden.dtype)  # (B, T)
        return (hidden * real[:, :, None]).sum(1) / lengths[:, None].to(hidden.dtype)  # (B, D)
    raise ValueError(f"pool: must be 'first', 'last' or 'mean', got {pool!r}")


class _PooledHead(nn.Module):
    """Pool → optional pooler (dense + tanh) → dropout → linear to `n_out`."""

    def __init__(self, d_model: int, n_out: int, pool: Pool, dropout: float, pooler: bool) -> None:
        super().__init__()
        if pool not in ("first", "last", "mean"):
            raise ValueError(f"pool: must be 'first', 'last' or 'mean', got {pool!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {dropout!r}")
        self.pool: Pool = pool
        self.pooler = nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh()) if pooler else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, n_out)
        self.hook_pooled = HookPoint()  # (B, D): the pooled representation the linear layer reads
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, INIT_STD)
                nn.init.zeros_(m.bias)

    def features(self, hidden: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B,T,D) → (B,D) pooled (and pooler-transformed) features."""
        return self.hook_pooled(self.pooler(pool_hidden(hidden, self.pool, lengths)))

    def _out(self, hidden: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        return self.out(self.drop(self.features(hidden, lengths)))  # (B, n_out)


class ClassificationHead(_PooledHead):
    """Logits (B, n_classes) from pooled hidden states."""

    def __init__(
        self, d_model: int, n_classes: int, pool: Pool = "first", dropout: float = 0.0, pooler: bool = False
    ) -> None:
        if n_classes < 2:
            raise ValueError(f"n_classes: must be at least 2, got {n_classes}")
        super().__init__(d_model, n_classes, pool, dropout, pooler)
        self.n_classes = n_classes

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B,T,D) hidden states → (B, n_classes) logits."""
        return self._out(hidden, lengths)


class RegressionHead(_PooledHead):
    """One real number per sequence (B,) from pooled hidden states."""

    def __init__(
        self, d_model: int, pool: Pool = "first", dropout: float = 0.0, pooler: bool = False
    ) -> None:
        super().__init__(d_model, 1, pool, dropout, pooler)

    def forward(self, hidden: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B,T,D) hidden states → (B,) predictions."""
        return self._out(hidden, lengths)[:, 0]


class SegmentEmbedding(nn.Module):
    """BERT's segment (sentence A / B) embeddings, added to the GPT's token embeddings via `hook_embed`."""

    def __init__(self, d_model: int, n_segments: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_segments, d_model)  # (n_segments, D)
        nn.init.normal_(self.embed.weight, 0.0, INIT_STD)

    @contextlib.contextmanager
    def applied(self, model: GPT, segments: torch.Tensor) -> Iterator[None]:
        """Within the block, `model`'s forward passes add `embed[segments]` (B,T,D) to token embeddings."""

        def add(x: torch.Tensor, _hook: HookPoint) -> torch.Tensor:
            if x.shape[:2] != segments.shape:
                raise ValueError(
                    f"segments: shape {tuple(segments.shape)} does not match tokens {x.shape[:2]}"
                )
            return x + self.embed(segments.to(x.device)).to(x.dtype)

        with model.hooks([("hook_embed", add)]):
            yield


class ModelWithHead(nn.Module):
    """A GPT backbone and a head: `forward(idx, lengths, segments) -> head output`."""

    def __init__(
        self,
        backbone: GPT,
        head: ClassificationHead | RegressionHead,
        segment_embedding: SegmentEmbedding | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.segment_embedding = segment_embedding

    def forward(
        self, idx: torch.Tensor, lengths: torch.Tensor | None = None, segments: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Token ids (B,T) → logits (B,C) or predictions (B,)."""
        if segments is not None and self.segment_embedding is not None:
            with self.segment_embedding.applied(self.backbone, segments):
                hidden = self.backbone.hidden(idx)  # (B, T, D)
        else:
            hidden = self.backbone.hidden(idx)  # (B, T, D)
        return self.head(hidden, lengths)
