"""Training throughput of our GPT against Hugging Face's GPT2LMHeadModel, measured in the same run.

For each shape both models train on random tokens (vocabulary 65, fp32, AdamW, no dropout, the same loss code)
and the script prints tokens/s, MFU and the ratio ours/HF. MFU is achieved training FLOPs per second over the
fp32 matmul peak measured in this run:

    MFU = (6N + 12·L·T·D) · tokens/s / peak

with N counted as nanoGPT's `estimate_mfu` does (REFERENCES §5): every parameter but the position embeddings,
so the tied output layer's matmuls (6·V·D per token) are included. The "w/o head" column leaves them out
(N non-embedding, Kaplan et al.'s count); the two differ by 3 % at the smallest shape. The peak is the
best rate of a large square sgemm timed with `torch.matmul` on the same threads (probed at the start, between
blocks about every four steps of each model, and at the end; the best probe is used).

The two models alternate in blocks of consecutive steps (`--block`, default 4: ours ×4, HF ×4, HF ×4,
ours ×4, …; each block after one untimed step that brings its model back into the caches), as a training run
takes one model's steps back to back; tokens/s comes from each model's median (or `--stat min`) step time and
ours/HF is the median over rounds of the ratio of adjacent blocks' medians, so a burst of load from other
processes hits both rather than one: the ratio is the number to read on a shared machine. `--block 1`
alternates single steps, where each step starts with the other model's working set in the caches.

    .venv/bin/python bench/train_throughput.py                # three shapes, 2 threads
    .venv/bin/python bench/train_throughput.py --quick        # fewer steps, for a smoke check
    .venv/bin/python bench/train_throughput.py --block 1      # alternate single steps
    .venv/bin/python bench/train_throughput.py --threads 1 --stat min --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import torch.nn.functional as F
from torch import nn

from emergence.models.families import flops_per_token
from emergence.models.gpt import GPT, GPTConfig, mlp_elements_per_step
from emergence.models.kernels import AUTO_MIN_WORK, fused_gelu, use_fused_gelu
from emergence.runtime import tune_allocator

VOCAB = 65


@dataclass(frozen=True)
class Shape:
    """One benchmark shape: layers, heads, width, context and batch size."""

    n_layer: int
    n_head: int
    d_model: int
    n_ctx: int
    batch: int

    @property
    def label(self) -> str:
        return f"L{self.n_layer} D{self.d_model} T{self.n_ctx} B{self.batch}"


SHAPES = (
    Shape(n_layer=2, n_head=4, d_model=64, n_ctx=128, batch=32),
    Shape(n_layer=4, n_head=4, d_model=128, n_ctx=256, batch=32),
    Shape(n_layer=6, n_head=6, d_model=384, n_ctx=256, batch=16),
)


def matmul_peak(seconds: float = 2.0, n: int = 2048) -> float:
    """Best observed fp32 GEMM rate (FLOP/s) of an n×n×n torch.matmul on the current threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    for _ in range(2):
        torch.matmul(a, b, out=out)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        torch.matmul(a, b, out=out)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def ours_config(shape: Shape) -> GPTConfig:
    return GPTConfig(
        vocab_size=VOCAB,
        n_layer=shape.n_layer,
        n_head=shape.n_head,
        d_model=shape.d_model,
        n_ctx=shape.n_ctx,
        dropout=0.0,
    )


def ours(shape: Shape) -> nn.Module:
    return GPT(ours_config(shape))


class HFLogits(nn.Module):
    """GPT2LMHeadModel returning plain logits, so both models share the loss code."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(
            vocab_size=VOCAB,
            n_positions=shape.n_ctx,
            n_embd=shape.d_model,
            n_layer=shape.n_layer,
            n_head=shape.n_head,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=0,
            eos_token_id=0,
            attn_implementation="sdpa",  # HF's fastest CPU attention; the default in recent versions
        )
        self.model = GPT2LMHeadModel(cfg)
        self.model.config.use_cache = False

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=idx, use_cache=False).logits


def make_step(model: nn.Module, shape: Shape, seed: int) -> Callable[[], float]:
    """A closure doing one AdamW training step on a fixed random batch; returns its wall time."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, VOCAB, (shape.batch, shape.n_ctx), generator=g)
    y = torch.randint(0, VOCAB, (shape.batch, shape.n_ctx), generator=g)
    model.train()
    # The fused CPU kernel is ~4x faster than foreach here; both models get the same optimizer.
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, fused=True)

    def step() -> float:
        t0 = time.perf_counter()
        logits = model(x)  # (B, T, V)
        loss = F.cross_entropy(logits.view(-1, VOCAB), y.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return step


def bench_shape(
    shape: Shape, warmup: int, steps: int, stat: str, peaks: list[float], block: int
) -> dict[str, float | str]:
    """Time the two models in alternating blocks of `block` consecutive steps; tokens/s and the paired ratio.

    A training run takes one model's steps back to back. Alternating single steps (`block` = 1) makes every
    step start with the caches holding the other model's working set (tens of MB of activations at these
    shapes), which slows both models alike (the ratio holds, the absolute rates drop); blocks keep each model
    warm as in training while adjacent blocks still share the machine's load of that moment.
    """
    torch.manual_seed(0)
    models = {"ours": ours(shape), "hf": HFLogits(shape)}
    step_fns = {name: make_step(m, shape, seed=1) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for fn in step_fns.values():
        for _ in range(warmup):
            fn()
    ratios = []
    rounds = max(1, steps // block)
    for i in range(rounds):
        # Alternate which model goes first so that neither always runs right after the other's memory traffic.
        order = ("ours", "hf") if i % 2 == 0 else ("hf", "ours")
        block_times: dict[str, list[float]] = {}
        for name in order:
            step_fns[name]()  # one untimed step brings this model's working set back into the caches
            block_times[name] = [step_fns[name]() for _ in range(block)]
            times[name] += block_times[name]
        ratios.append(statistics.median(block_times["hf"]) / statistics.median(block_times["ours"]))
        if i % max(1, 4 // block) == max(1, 4 // block) - 1:
            peaks.append(matmul_peak(seconds=0.2))  # between blocks, never inside one
    cfg = models["ours"].cfg  # type: ignore[union-attr]
    pick = statistics.median if stat == "median" else min
    tokens = shape.batch * shape.n_ctx
    row: dict[str, float | str] = {
        "shape": shape.label,
        "flops_per_token": flops_per_token(cfg, shape.n_ctx, output_layer=True),  # nanoGPT's estimate_mfu
        "flops_per_token_without_head": flops_per_token(cfg, shape.n_ctx),
    }
    for name, ts in times.items():
        row[f"{name}_tokens_s"] = tokens / pick(ts)
    # Adjacent blocks share the machine's load of that moment; the median over rounds resists load bursts.
    row["ratio"] = statistics.median(ratios)
    return row


def main() -> None:
    """Parse arguments, benchmark every shape, then print the table with MFU against the best peak seen."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--steps", type=int, default=16, help="timed steps per model and shape")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model and shape")
    parser.add_argument(
        "--stat", choices=("median", "min"), default="median", help="step time statistic (min: least loaded)"
    )
    parser.add_argument(
        "--block",
        type=int,
        default=4,
        help="consecutive timed steps per model before switching to the other (1: alternate single steps)",
    )
    parser.add_argument(
        "--fused-gelu",
        choices=("on", "off"),
        default="on",
        help="our model's compiled tanh-GELU, as the trainer uses it on long runs (default on)",
    )
    parser.add_argument("--quick", action="store_true", help="4 timed steps, 1 warm-up")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup = 4, 1
    torch.set_num_threads(args.threads)
    # As `emergence train` does; process-wide, so both models get it (see docs/performance.md).
    tuned = tune_allocator()
    import transformers

    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, threads {args.threads}, "
        f"{args.steps} timed steps per model after {args.warmup} warm-up, in blocks of {args.block}, "
        f"{args.stat} step time, allocator tuning {'on' if tuned else 'off'}",
        flush=True,
    )
    fused = use_fused_gelu(args.fused_gelu == "on", 1, 1)  # False when opted out by the environment
    print(f"our fused GELU {'on' if fused else 'off'}", flush=True)
    peaks = [matmul_peak()]
    rows = []
    for shape in SHAPES:
        with fused_gelu(fused):
            row = bench_shape(shape, args.warmup, args.steps, args.stat, peaks, args.block)
        rows.append(row)
        auto_from = math.ceil(AUTO_MIN_WORK / mlp_elements_per_step(ours_config(shape), shape.batch))
        print(
            f"  {row['shape']}: ours/HF {row['ratio']:.2f} "
            f"(train.fused_gelu auto turns the kernel on for runs of {auto_from:,}+ steps)",
            flush=True,
        )
    peaks.append(matmul_peak(seconds=1.0))
    # The best sgemm rate seen anywhere in the run: under load from other processes this is the closest
    # estimate of what the cores can do, so MFU errs low rather than high.
    peak = max(peaks)
    print(
        f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s "
        f"(best of {len(peaks)} probes; worst {min(peaks) / 1e9:.1f})"
    )
    print(
        f"{'shape':<22}{'ours tok/s':>12}{'ours MFU':>10}{'w/o head':>10}"
        f"{'HF tok/s':>12}{'HF MFU':>9}{'w/o head':>10}{'ours/HF':>9}"
    )
    for row in rows:
        for name in ("ours", "hf"):
            rate = float(row[f"{name}_tokens_s"]) / peak
            row[f"{name}_mfu"] = float(row["flops_per_token"]) * rate
            row[f"{name}_mfu_without_head"] = float(row["flops_per_token_without_head"]) * rate
        print(
            f"{row['shape']:<22}{row['ours_tokens_s']:>12,.0f}{row['ours_mfu']:>10.1%}"
            f"{row['ours_mfu_without_head']:>10.1%}{row['hf_tokens_s']:>12,.0f}{row['hf_mfu']:>9.1%}"
            f"{row['hf_mfu_without_head']:>10.1%}{row['ratio']:>9.2f}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"peak_flops": peak, "peaks": peaks, "args": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
