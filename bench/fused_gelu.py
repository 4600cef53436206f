"""The fused tanh-GELU's effect on a training step of our GPT, measured step for step in one process.

The same model and batch train in alternating blocks of steps with the compiled kernel on and off
(`emergence.models.kernels.fused_gelu`), so that load from other processes hits both sides of a round; the
ratio off/on of the median step times is the number to read. Also printed: the kernel alone, forward +
backward on the shape's MLP activation, against PyTorch's kernel; and the step time of the same model on a
1 × 8 batch, the per-step cost of dispatch, autograd and the optimizer that no kernel removes.

    .venv/bin/python bench/fused_gelu.py                 # the three benchmark shapes, 2 threads
    .venv/bin/python bench/fused_gelu.py --rounds 8      # quicker
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from emergence.models import kernels
from emergence.models.kernels import fused_gelu, gelu_tanh
from emergence.runtime import tune_allocator
from train_throughput import SHAPES, VOCAB, Shape, ours


def training_step(shape: Shape, batch: int, n_ctx: int) -> Callable[[], float]:
    torch.manual_seed(0)
    model = ours(shape)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, fused=True)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, VOCAB, (batch, n_ctx), generator=g)
    y = torch.randint(0, VOCAB, (batch, n_ctx), generator=g)

    def step() -> float:
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x).view(-1, VOCAB), y.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return step


def alternate(fns: dict[str, Callable[[], float]], rounds: int, block: int = 4) -> dict[str, float]:
    """Median over rounds of each side's median block time; sides swap order every round."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            fns[name]()  # untimed: bring this side's working set back into the caches
            out[name].append(statistics.median(fns[name]() for _ in range(block)))
    return {k: statistics.median(v) for k, v in out.items()}


def with_kernel(fn: Callable[[], float], on: bool) -> Callable[[], float]:
    """`fn` run with the fused GELU on or off."""

    def run() -> float:
        with fused_gelu(on):
            return fn()

    return run


def kernel_call(act: torch.Tensor, grad: torch.Tensor) -> Callable[[], float]:
    """Forward + backward of the tanh-GELU on `act`; returns its wall time."""

    def run() -> float:
        act.grad = None
        t0 = time.perf_counter()
        gelu_tanh(act, training=True).backward(grad)
        return time.perf_counter() - t0

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=12, help="alternations of the two sides per shape")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()
    if not kernels.use_fused_gelu(True, 1, 1):
        raise SystemExit("the fused GELU is off (EMERGENCE_FUSED_GELU=0 or no compiler); nothing to compare")
    print(f"torch {torch.__version__}, threads {args.threads}, {args.rounds} rounds of 4 steps a side")
    head = ("step on", 10), ("step off", 10), ("off/on", 8), ("kernel", 9), ("PyTorch", 9), ("1×8 step", 10)
    print(f"{'shape':<22}" + "".join(f"{name:>{width}}" for name, width in head))
    for shape in SHAPES:
        step = training_step(shape, shape.batch, shape.n_ctx)
        with_kernel(step, True)()  # compiles on first use
        steps = alternate({"on": with_kernel(step, True), "off": with_kernel(step, False)}, args.rounds)
        act = torch.randn(shape.batch, shape.n_ctx, 4 * shape.d_model, requires_grad=True)
        call = kernel_call(act, torch.randn_like(act))
        kern = alternate({"on": with_kernel(call, True), "off": with_kernel(call, False)}, args.rounds)
        tiny = training_step(shape, 1, 8)
        for _ in range(3):
            tiny()
        overhead = statistics.median(tiny() for _ in range(20))
        print(
            f"{shape.label:<22}{steps['on'] * 1e3:>8.2f}ms{steps['off'] * 1e3:>8.2f}ms"
            f"{steps['off'] / steps['on']:>8.3f}{kern['on'] * 1e3:>7.2f}ms{kern['off'] * 1e3:>7.2f}ms"
            f"{overhead * 1e3:>8.2f}ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
