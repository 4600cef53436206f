"""The fused tanh-GELU: the same function as PyTorch's kernel, used only where it is meant to be."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from emergence.models import kernels
from emergence.models.gpt import GPT, GPTConfig, mlp_elements_per_step
from emergence.models.kernels import (
    AUTO_MIN_WORK,
    fused_gelu,
    gelu_tanh,
    use_fused_gelu,
)


@pytest.fixture(autouse=True)
def _fresh_kernel_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(kernels.OPT_OUT, raising=False)
    monkeypatch.setattr(kernels, "_compile_failed", False)


def _fwd_bwd(fn, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    y.backward(g)
    return y.detach(), x.grad


def test_fused_kernel_matches_pytorch_forward_and_backward() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 64, 300) * 3  # covers the tails, where tanh saturates
    g = torch.randn_like(x)
    with fused_gelu(True):
        y_fused, dx_fused = _fwd_bwd(lambda t: gelu_tanh(t, training=True), x, g)
    assert kernels._compiled is not None  # the compiled kernel really ran
    y_ref, dx_ref = _fwd_bwd(lambda t: F.gelu(t, approximate="tanh"), x, g)
    assert not torch.equal(y_fused, y_ref)  # a different evaluation ...
    torch.testing.assert_close(y_fused, y_ref, rtol=0, atol=2e-6)  # ... of the same function
    torch.testing.assert_close(dx_fused, dx_ref, rtol=0, atol=2e-5)
    # Another shape reuses the kernel (dynamic shapes) and is as exact.
    x2 = torch.randn(3, 17, 2048)
    with fused_gelu(True):
        y2 = gelu_tanh(x2.requires_grad_(True), training=True)
    torch.testing.assert_close(y2, F.gelu(x2, approximate="tanh"), rtol=0, atol=2e-6)


def test_pytorch_kernel_everywhere_but_training() -> None:
    x = torch.randn(8, 64, 256, requires_grad=True)
    ref = F.gelu(x, approximate="tanh")
    with fused_gelu(True):
        assert torch.equal(gelu_tanh(x, training=False), ref)  # eval mode
        with torch.no_grad():
            assert torch.equal(gelu_tanh(x, training=True), ref)  # no gradients
        small = torch.randn(4, 8, 16, requires_grad=True)
        assert torch.equal(gelu_tanh(small, training=True), F.gelu(small, approximate="tanh"))  # too small
    assert torch.equal(gelu_tanh(x, training=True), ref)  # outside a training run's block
    assert not kernels._active


def test_model_training_step_uses_it_and_eval_does_not() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=17, n_layer=1, n_head=2, d_model=32, n_ctx=64, dropout=0.0))
    idx = torch.randint(0, 17, (16, 64))  # MLP activation 16 × 64 × 128 = 131,072 elements
    model.train()
    with fused_gelu(True):
        fused = model(idx)
    plain = model(idx)
    assert not torch.equal(fused, plain)
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-5)
    model.eval()
    with fused_gelu(True):
        assert torch.equal(model(idx), plain)


def test_compile_failure_falls_back_once(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(kernels, "_compiled", None)
    monkeypatch.setattr(torch, "compile", broken)
    x = torch.randn(8, 64, 256, requires_grad=True)
    with caplog.at_level(logging.WARNING, logger="emergence.models.kernels"), fused_gelu(True):
        y = gelu_tanh(x, training=True)
        gelu_tanh(x, training=True)
    assert torch.equal(y, F.gelu(x, approximate="tanh"))
    assert [r.getMessage() for r in caplog.records] == [
        "fused GELU unavailable (RuntimeError: no C++ compiler); using PyTorch's kernel"
    ]
    assert not use_fused_gelu(True, 1, 1)  # later runs no longer ask for it


def test_auto_decision_and_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    per_step = 32 * 128 * 256 * 2  # the small benchmark shape
    assert mlp_elements_per_step(GPTConfig(vocab_size=65, n_layer=2, d_model=64, n_ctx=128), 32) == per_step
    steps = -(-int(AUTO_MIN_WORK) // per_step)
    assert use_fused_gelu("auto", per_step, steps) and not use_fused_gelu("auto", per_step, steps - 1)
    assert use_fused_gelu(True, 1, 1) and not use_fused_gelu(False, per_step, 10**9)
    for cfg in (
        GPTConfig(vocab_size=65, n_layer=2, d_model=64, n_ctx=128, act="relu"),
        GPTConfig(vocab_size=65, n_layer=2, d_model=64, n_ctx=128, attn_only=True),
    ):
        assert mlp_elements_per_step(cfg, 32) == 0
    monkeypatch.setenv(kernels.OPT_OUT, "0")
    assert not use_fused_gelu(True, per_step, 10**9)
