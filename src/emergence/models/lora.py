"""Low-rank adapters (LoRA, Hu et al. 2021) for our GPT's linear layers, and the three fine-tuning modes.

A wrapped layer computes

    y = W x + b + (α/r) · B A dropout(x)        A (r, in) ~ Kaiming-uniform,  B (out, r) = 0

so a freshly wrapped model computes exactly what it did before, and only A and B train. `merge_lora` folds
(α/r)·BA into W and puts the plain `nn.Linear` back, so the merged model is an ordinary GPT (same state-dict
keys, saved by the usual checkpoint code) whose outputs equal the adapted model's up to rounding.

Targets are module-path suffixes of the GPT: `attn.qkv`, `attn.out`, `mlp.fc_in`, `mlp.fc_out`. Hook points
are separate modules, so `run_with_cache`/`run_with_hooks` work unchanged on an adapted model.

This is the computation of the `peft` library's LoRA layer (same initialisation, scaling and merge; tested
equal to it when `peft` is installed), written here because `peft` is an optional dependency that imports all
of `transformers`, and because merging back to a plain GPT keeps checkpoints in one format.

Fine-tuning modes (`prepare_finetune`): "full" trains everything; "head" freezes the backbone and trains the
head; "lora" freezes the backbone, adds adapters, and trains adapters and head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

LORA_TARGETS: tuple[str, ...] = ("attn.qkv", "attn.out", "mlp.fc_in", "mlp.fc_out")
FinetuneMode = Literal["full", "head", "lora"]


@dataclass(frozen=True)
class LoRAConfig:
    """Rank, scale, dropout and target layers of the adapters."""

    r: int = 8  # rank of the update BA
    alpha: float = 16.0  # the update is scaled by alpha / r (Hu et al. 2021 §4.1), so r can change alone
    dropout: float = 0.0  # dropout on the adapter's input only
    targets: tuple[str, ...] = ("attn.qkv", "attn.out")  # Hu et al. adapt the attention projections

    def __post_init__(self) -> None:
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"r: must be a positive integer, got {self.r!r}")
        if not self.alpha > 0:
            raise ValueError(f"alpha: must be positive, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout!r}")
        if not self.targets:
            raise ValueError("targets: name at least one layer")
        for t in self.targets:
            if t not in LORA_TARGETS:
                raise ValueError(f"targets: {t!r} is not one of {', '.join(LORA_TARGETS)}")

    @property
    def scaling(self) -> float:
        """alpha / r."""
        return self.alpha / self.r


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base = base
        self.r = r
        self.scaling = alpha / r
        self.lora_A = nn.Parameter(base.weight.new_empty(r, base.in_features))  # (r, in)
        self.lora_B = nn.Parameter(base.weight.new_zeros(base.out_features, r))  # (out, r)
        # As the reference implementation and peft: A Kaiming-uniform, B zero, so BA = 0 at the start.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.drop = nn.Dropout(dropout)
        for p in self.base.parameters():
            p.requires_grad_(False)

    @property
    def delta_weight(self) -> torch.Tensor:
        """(α/r)·BA, shaped like the base weight (out, in)."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(…, in) → (…, out)."""
        update = F.linear(F.linear(self.drop(x), self.lora_A), self.lora_B)  # (…, r) then (…, out)
        return self.base(x) + update * self.scaling

    def merged(self) -> nn.Linear:
        """The base layer with the update folded into its weight (in place; it stays frozen)."""
        with torch.no_grad():
            self.base.weight += self.delta_weight.to(self.base.weight.dtype)
        return self.base

    def extra_repr(self) -> str:
        return f"r={self.r}, scaling={self.scaling:g}"


def _targets(model: nn.Module, targets: tuple[str, ...]) -> list[str]:
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear | LoRALinear) and any(name == t or name.endswith("." + t) for t in targets)
    ]


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def apply_lora(model: nn.Module, cfg: LoRAConfig) -> list[str]:
    """Freeze `model` and wrap its target linear layers with adapters (in place); return the wrapped paths."""
    names = _targets(model, cfg.targets)
    if not names:
        raise ValueError(f"apply_lora: no linear layer matches {cfg.targets}")
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        layer = model.get_submodule(name)
        if isinstance(layer, LoRALinear):
            raise ValueError(f"apply_lora: {name} already has an adapter")
        assert isinstance(layer, nn.Linear)
        _set(model, name, LoRALinear(layer, cfg.r, cfg.alpha, cfg.dropout))
    return names


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The adapter matrices (A and B of every wrapped layer)."""
    return [p for m in model.modules() if isinstance(m, LoRALinear) for p in (m.lora_A, m.lora_B)]


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors, by parameter name (small enough to save per task)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.endswith(("lora_A", "lora_B"))}


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and restore the plain layers (in place); returns `model`."""
    for name, m in list(model.named_modules()):
        if isinstance(m, LoRALinear):
            _set(model, name, m.merged())
    return model


def prepare_finetune(
    model: nn.Module, head: nn.Module, mode: FinetuneMode, lora: LoRAConfig | None = None
) -> list[nn.Parameter]:
    """Set what trains for a fine-tuning mode (in place) and return the trainable parameters."""
    if mode == "full":
        for p in (*model.parameters(), *head.parameters()):
            p.requires_grad_(True)
    elif mode == "head":
        for p in model.parameters():
            p.requires_grad_(False)
        for p in head.parameters():
            p.requires_grad_(True)
    elif mode == "lora":
        apply_lora(model, lora if lora is not None else LoRAConfig())
        for p in head.parameters():
            p.requires_grad_(True)
    else:
        raise ValueError(f"mode: must be 'full', 'head' or 'lora', got {mode!r}")
    seen: set[int] = set()
    out = []
    for p in (*model.parameters(), *head.parameters()):
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out
