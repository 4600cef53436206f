"""A fused tanh-GELU for training on CPU, with PyTorch's own kernel as the reference and the fallback.

GPT-2's activation is GELU with the tanh approximation. PyTorch's CPU kernel for it evaluates a vectorised
tanh accurate to one ULP and takes ~2× the time of the erf GELU: on a (32, 128, 256) fp32 tensor, 2.3–3.0 ms
for forward + backward (2 threads). The same function written with the identity
0.5·(1 + tanh(u)) = sigmoid(2u),

    gelu_tanh(x) = x · sigmoid(2·√(2/π)·(x + 0.044715·x³)),

and compiled by TorchInductor into one loop forward and one backward takes 1.2–1.7 ms, and agrees with
PyTorch's kernel to ≤ 5e-7 absolute. In a training step of the smallest benchmark shape that is ~5 % of the
step time (docs/performance.md).

The compiled kernel costs a compile on first use in a process (~2.5 s with Inductor's on-disk cache warm,
~15 s cold) and needs a C++ compiler, so it is opt-in per training run: the trainer turns it on for the run
(`train.fused_gelu`; "auto" when the run is long enough to win back the compile, `use_fused_gelu`) and off
again after. Only training calls use it: in eval mode, without gradients, under `torch.func` transforms or
inside a compiled model the model calls PyTorch's kernel, so analysis (hooks, Jacobians, attribution) sees
exactly the eager function. If compiling fails for any reason the process falls back to PyTorch's kernel
once and for all, with one warning. `EMERGENCE_FUSED_GELU=0` keeps it off whatever the config says.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

OPT_OUT = "EMERGENCE_FUSED_GELU"
# Below this many elements a call is dominated by other work.
MIN_NUMEL = 1 << 16
# "auto" turns the kernel on when a run's MLP activations (elements per step × layers × steps) reach this:
# at ~0.9 ns saved per element (forward + backward, measured in a training step) that is ~9 s saved,
# against a ~2.5 s compile with a warm cache.
AUTO_MIN_WORK = 1e10

_K = 2.0 * math.sqrt(2.0 / math.pi)


def _gelu_tanh_formula(x: torch.Tensor) -> torch.Tensor:
    # The tanh approximation, as x·sigmoid(2u); sigmoid's exp is far cheaper than a 1-ULP tanh.
    return x * torch.sigmoid(_K * (x + 0.044715 * x * x * x))


_compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
_compile_failed = False
_active = False


def opted_out() -> bool:
    """EMERGENCE_FUSED_GELU=0 (or false/no/off) in the environment."""
    return os.environ.get(OPT_OUT, "1").strip().lower() in ("0", "false", "no", "off")


def use_fused_gelu(mode: bool | str, elements_per_step: int, total_steps: int) -> bool:
    """Whether a training run uses the compiled kernel: `mode` true/false, or "auto" — on when the run's MLP
    work (elements of the MLP activation per step, all layers, × steps) reaches AUTO_MIN_WORK. A function of
    the config alone, so that a resumed run decides as the uninterrupted one did."""
    if opted_out() or _compile_failed or not hasattr(torch, "compile"):
        return False
    if mode == "auto":
        return elements_per_step * total_steps >= AUTO_MIN_WORK
    return bool(mode)


@contextmanager
def fused_gelu(enabled: bool) -> Iterator[None]:
    """Use the compiled kernel for training calls inside the block (a training run's loop)."""
    global _active
    before, _active = _active, enabled
    try:
        yield
    finally:
        _active = before


def _ensure_compiled(x: torch.Tensor) -> bool:
    """Compile on first use and run forward + backward once on a copy of `x`, so that a failure in either
    surfaces here, where it can fall back, rather than inside the caller's `loss.backward()`."""
    global _compiled, _compile_failed
    if _compiled is None and not _compile_failed:
        try:
            # dynamic: one kernel for every batch and sequence length instead of a recompile per shape.
            fn = torch.compile(_gelu_tanh_formula, dynamic=True, fullgraph=True)
            probe = x.detach().clone().requires_grad_(True)
            fn(probe).sum().backward()
        except Exception as err:  # any compile failure: fall back, training must go on
            _compile_failed = True
            log.warning("fused GELU unavailable (%s: %s); using PyTorch's kernel", type(err).__name__, err)
            return False
        _compiled = fn
    return _compiled is not None


def gelu_tanh(x: torch.Tensor, training: bool) -> torch.Tensor:
    """GELU with the tanh approximation: the compiled kernel for training calls inside `fused_gelu(True)`
    on large enough fp32 CPU tensors, PyTorch's kernel otherwise."""
    if (
        _active
        and training
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.requires_grad
        and torch.is_grad_enabled()
        and x.numel() >= MIN_NUMEL
        and not torch._C._are_functorch_transforms_active()
        and not torch.compiler.is_compiling()
        and _ensure_compiled(x)
    ):
        return _compiled(x)  # type: ignore[misc]
    return F.gelu(x, approximate="tanh")
