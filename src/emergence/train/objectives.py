"""Training objectives: a loss from a model's logits, its targets and a loss mask.

Causal LM (next-token prediction): position t predicts token t+1; `mask` selects the positions that count
(answer tokens of a task example, every real token of a text window; never padding). Objectives return the
*sum* of per-token losses and the token count, so that gradient accumulation over micro-batches can divide
by the total number of counted tokens of the whole step (an exact mean, however the tokens fall across
micro-batches). `CausalObjective` is clm behind the trainer's objective interface; the encoder objectives
(masked LM, next-sentence prediction) implement the same interface in `train.encoder`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from emergence.train.heldout import evaluate
from emergence.train.losses import OBJECTIVES, Objective, causal_lm_loss, per_token_loss

__all__ = ["OBJECTIVES", "CausalObjective", "Objective", "causal_lm_loss", "per_token_loss"]


class CausalObjective:
    """The trainer's interface (`train.encoder.TrainObjective`) for next-token prediction."""

    def __init__(self, data: Any, loss: Objective) -> None:
        self.data = data
        self.loss = loss
        self.modules = nn.ModuleDict()  # nothing trains beside the model

    def step_batches(self, step: int, batch_size: int, grad_accum: int) -> list[Any]:
        """The run data's micro-batches of step `step`."""
        return self.data.step_batches(step, batch_size, grad_accum)

    def counts(self, batch: Any) -> dict[str, int]:
        """Counted target positions."""
        return {"clm": int(batch.mask.sum())}

    def losses(self, model: nn.Module, batch: Any) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Summed next-token loss of one micro-batch."""
        s, _ = self.loss(model(batch.x).float(), batch.y, batch.mask)
        return {"clm": s}, {}

    def evaluate(self, model: nn.Module, batch_size: int, device: str) -> dict[str, float]:
        """Held-out loss and exact match (`train.heldout.evaluate`)."""
        return evaluate(model, self.data, batch_size, device)
