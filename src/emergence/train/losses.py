"""Loss functions from a model's logits, its targets and a loss mask (the `OBJECTIVES` registry).

Causal LM (next-token prediction): position t predicts token t+1; `mask` selects the positions that count
(answer tokens of a task example, every real token of a text window; never padding). A loss returns the
*sum* of per-token losses and the token count, so that gradient accumulation over micro-batches can divide
by the total number of counted tokens of the whole step. Kept apart from `train.objectives` (the trainer's
objective interface) so that held-out measurement (`train.heldout`) can use them without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from emergence.registry import Registry

# (logits (B,T,V), targets (B,T), mask (B,T) bool) -> (sum of losses, number of counted tokens)
Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, int]]

OBJECTIVES: Registry[Objective] = Registry("objective")


@OBJECTIVES.register("clm")
def causal_lm_loss(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over masked positions, and how many positions were counted."""
    B, T, V = logits.shape
    flat_mask = mask.reshape(B * T)  # (B*T,)
    # Index first, so the softmax runs only over counted positions (answers are a small part of a task batch).
    picked = logits.reshape(B * T, V)[flat_mask]  # (N, V)
    loss = F.cross_entropy(picked.float(), targets.reshape(B * T)[flat_mask], reduction="sum")
    return loss, int(flat_mask.sum())


def per_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Unreduced next-token cross-entropy (B,T), for evaluation by position."""
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(B * T), reduction="none").view(
        B, T
    )
