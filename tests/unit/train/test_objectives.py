"""The masked causal-LM loss: only masked positions count, exactly as a per-token cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from emergence.train.objectives import OBJECTIVES, causal_lm_loss, per_token_loss


def test_masked_sum_matches_manual_cross_entropy() -> None:
    logits = torch.randn(2, 5, 7)
    targets = torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[0, 0, 1, 1, 0], [1, 0, 0, 0, 1]], dtype=torch.bool)
    total, n = causal_lm_loss(logits, targets, mask)
    manual = sum(F.cross_entropy(logits[b, t][None], targets[b, t][None]) for b, t in mask.nonzero().tolist())
    assert n == 4
    assert torch.allclose(total, manual)
    assert torch.allclose(per_token_loss(logits, targets)[mask].sum(), total)
    assert OBJECTIVES.get("clm") is causal_lm_loss


def test_masked_positions_get_no_gradient() -> None:
    logits = torch.randn(1, 4, 6, requires_grad=True)
    mask = torch.tensor([[False, True, False, True]])
    total, _ = causal_lm_loss(logits, torch.zeros(1, 4, dtype=torch.long), mask)
    total.backward()
    assert logits.grad is not None
    assert logits.grad[0, 0].abs().sum() == 0 and logits.grad[0, 2].abs().sum() == 0
    assert logits.grad[0, 1].abs().sum() > 0
