"""Hook points: every analysable activation passes through an identity `HookPoint` named by its module path.

Names follow TransformerLens (`blocks.3.attn.hook_pattern`, `blocks.0.mlp.hook_post`, `hook_embed`, …) and are
never typed by hand: `HookedModule.setup_hooks()` walks the module tree and names each point by its path.

    logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    logits = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_z", zero_head_2)])

A hook is `fn(activation, hook) -> activation | None`; returning a tensor replaces the activation (ablation,
patching). Modules can ask `hook_point.active` to decide whether to materialise something expensive (the
attention pattern), so the fast path stays fast when nobody is listening.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

HookFn = Callable[[torch.Tensor, "HookPoint"], torch.Tensor | None]
NamesFilter = Callable[[str], bool] | Sequence[str] | str | None


class HookPoint(nn.Module):
    """Identity module whose output can be read or replaced by hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.name: str = ""
        self._fns: list[HookFn] = []

    @property
    def active(self) -> bool:
        """True when at least one hook is attached (callers may then compute an optional activation)."""
        return bool(self._fns)

    def add(self, fn: HookFn) -> None:
        self._fns.append(fn)

    def remove(self, fn: HookFn) -> None:
        """Detach one attachment of `fn` (the latest), leaving every other hook in place."""
        for i in range(len(self._fns) - 1, -1, -1):
            if self._fns[i] is fn:
                del self._fns[i]
                return

    def clear(self) -> None:
        self._fns.clear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for fn in self._fns:
            out = fn(x, self)
            if out is not None:
                x = out
        return x

    def extra_repr(self) -> str:
        return self.name


def _as_filter(names_filter: NamesFilter) -> Callable[[str], bool]:
    if names_filter is None:
        return lambda _n: True
    if isinstance(names_filter, str):
        return lambda n: n == names_filter
    if callable(names_filter):
        return names_filter
    wanted = set(names_filter)
    return lambda n: n in wanted


class HookedModule(nn.Module):
    """Mixin for a root module: names its hook points and offers run_with_cache / run_with_hooks."""

    hook_dict: dict[str, HookPoint]

    def setup_hooks(self) -> None:
        """Name every HookPoint by its module path; call at the end of `__init__`."""
        self.hook_dict = {}
        for name, module in self.named_modules():
            if isinstance(module, HookPoint):
                module.name = name
                self.hook_dict[name] = module

    def hook_names(self) -> list[str]:
        return list(self.hook_dict)

    def reset_hooks(self) -> None:
        for hp in self.hook_dict.values():
            hp.clear()

    @contextlib.contextmanager
    def hooks(self, fwd_hooks: Sequence[tuple[str | Callable[[str], bool], HookFn]]) -> Iterator[None]:
        """Attach hooks for the duration of the block; a hook name may also be a filter function.

        On exit only the hooks this block attached are removed: hooks of an enclosing block (or added with
        `HookPoint.add`) stay, as TransformerLens's nested contexts do.
        """
        attached: list[tuple[HookPoint, HookFn]] = []
        try:
            for name, fn in fwd_hooks:
                match = _as_filter(name) if callable(name) else (lambda n, _name=name: n == _name)
                found = [hp for n, hp in self.hook_dict.items() if match(n)]
                if not found and not callable(name):
                    raise KeyError(f"no hook point named {name!r}")
                for hp in found:
                    hp.add(fn)
                    attached.append((hp, fn))
            yield
        finally:
            for hp, fn in reversed(attached):
                hp.remove(fn)

    def run_with_hooks(
        self, *args: Any, fwd_hooks: Sequence[tuple[str | Callable[[str], bool], HookFn]] = (), **kwargs: Any
    ) -> Any:
        """Forward pass with temporary hooks."""
        with self.hooks(fwd_hooks):
            return self(*args, **kwargs)

    def run_with_cache(
        self, *args: Any, names_filter: NamesFilter = None, detach: bool = True, **kwargs: Any
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        """Forward pass that also returns {hook name: activation} for the hook points passing the filter."""
        keep = _as_filter(names_filter)
        cache: dict[str, torch.Tensor] = {}

        def save(x: torch.Tensor, hook: HookPoint) -> None:
            cache[hook.name] = x.detach() if detach else x

        hooks = [(n, save) for n in self.hook_dict if keep(n)]
        with self.hooks(hooks):  # type: ignore[arg-type]
            out = self(*args, **kwargs)
        return out, cache
