"""Learning-rate schedule: linear warm-up, then cosine (or linear, or constant) decay to `min_lr`.

    lr
    |    ____
    |   /    `--.__
    |  /           `--.___
    | /                   `---- min_lr
    +--------------------------- step
      warm-up   decay until `total_steps`

The warm-up follows nanoGPT: step s (0-based) uses lr·(s + 1)/warmup_steps, so the first update is not zero.
The schedule is a pure function of the step, so resuming needs nothing but the step number.
"""

from __future__ import annotations

import math
from typing import Literal


def lr_at(
    step: int,
    *,
    lr: float,
    min_lr: float,
    warmup_steps: int,
    total_steps: int,
    schedule: Literal["cosine", "linear", "constant"] = "cosine",
) -> float:
    """Learning rate for the update at 0-based `step` of a run of `total_steps` updates."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    decay_steps = max(total_steps - warmup_steps, 1)
    # Progress runs 0 → 1 over the decay; the final update (step total_steps - 1) lands just above min_lr.
    progress = min(max((step - warmup_steps) / decay_steps, 0.0), 1.0)
    coeff = 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_lr + coeff * (lr - min_lr)
