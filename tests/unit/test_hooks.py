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


def test_nested_contexts_remove_only_their_own_hooks() -> None:
    m = Toy()
    x = torch.randn(2, 3)
    calls: list[str] = []

    def outer(a: torch.Tensor, hook: HookPoint) -> None:
        calls.append("outer")

    def inner(a: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        calls.append("inner")
        return torch.zeros_like(a)

    with m.hooks([("blocks.0.hook_out", outer)]):
        # run_with_cache opens its own context on every point, the outer hook's included
        _, cache = m.run_with_cache(x, names_filter="blocks.0.hook_out")
        assert "blocks.0.hook_out" in cache
        with m.hooks([("blocks.0.hook_out", inner)]):
            m(x)
        assert calls == ["outer", "outer", "inner"]
        calls.clear()
        m(x)  # the inner hook is gone, the outer one still fires
        assert calls == ["outer"]
        assert m.hook_dict["blocks.0.hook_out"].active
    assert not any(hp.active for hp in m.hook_dict.values())


def test_the_same_function_twice_is_removed_once_per_context() -> None:
    m = Toy()
    seen: list[int] = []

    def count(a: torch.Tensor, hook: HookPoint) -> None:
        seen.append(1)

    with m.hooks([("hook_in", count)]):
        with m.hooks([("hook_in", count)]):
            m(torch.randn(1, 3))
        assert len(seen) == 2
        m(torch.randn(1, 3))
        assert len(seen) == 3
    assert not m.hook_dict["hook_in"].active
