"""HookPoint naming by module path, caching with filters, and modifying hooks on a toy model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from emergence.models.hooks import HookedModule, HookPoint


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.hook_out = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hook_out(self.lin(x))


class Toy(HookedModule):
    def __init__(self) -> None:
        super().__init__()
        self.hook_in = HookPoint()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.setup_hooks()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hook_in(x)
        for b in self.blocks:
            x = b(x)
        return x


def test_names_are_module_paths() -> None:
    assert Toy().hook_names() == ["hook_in", "blocks.0.hook_out", "blocks.1.hook_out"]


def test_run_with_cache_filters_and_clears() -> None:
    m = Toy()
    x = torch.randn(2, 3)
    out, cache = m.run_with_cache(x, names_filter=lambda n: n.startswith("blocks"))
    assert set(cache) == {"blocks.0.hook_out", "blocks.1.hook_out"}
    torch.testing.assert_close(cache["blocks.1.hook_out"], out)
    assert not any(hp.active for hp in m.hook_dict.values())  # hooks removed afterwards


def test_run_with_hooks_modifies_and_removes() -> None:
    m = Toy()
    x = torch.randn(2, 3)
    clean = m(x)
    zeroed = m.run_with_hooks(x, fwd_hooks=[("blocks.0.hook_out", lambda a, hook: torch.zeros_like(a))])
    torch.testing.assert_close(zeroed, m.blocks[1].lin(torch.zeros(2, 3)))
    torch.testing.assert_close(m(x), clean)


def test_unknown_hook_name_raises() -> None:
    with pytest.raises(KeyError, match="no hook point"):
        Toy().run_with_hooks(torch.randn(1, 3), fwd_hooks=[("blocks.9.hook_out", lambda a, h: a)])
