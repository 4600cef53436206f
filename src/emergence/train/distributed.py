"""Data-parallel training under `torchrun`: process group, batch sharding, rank-0 side effects.

    torchrun --nproc_per_node=2 -m emergence train run.yaml --out runs/ddp

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; without them training is single-process and nothing here does
anything. Every rank draws the same global batch from the same seeded data stream and keeps a disjoint
shard of its rows (rank r takes rows r, r + W, r + 2W, …), so the data seen per step is exactly the
single-process batch. Gradients are averaged by DistributedDataParallel; the loss each rank backpropagates is
its token-sum divided by the *global* token count times W, so the average is the exact global mean and the
run matches single-process training up to float reduction order. Checkpoints, logs and the progress bar are
rank 0's job; the backend is gloo on CPU and NCCL on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from emergence.errors import UserError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a data-parallel job (world 1 = not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_env() -> DistContext:
    """Read torchrun's environment (absent → a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return DistContext()
    return DistContext(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def init(ctx: DistContext, device: str) -> str:
    """Join the process group (gloo on CPU, NCCL on CUDA); returns this rank's device."""
    if not ctx.enabled:
        return device
    if device.startswith("cuda"):
        device = f"cuda:{ctx.local_rank}"
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return device


def shutdown(ctx: DistContext) -> None:
    """Leave the process group."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def check_batch(ctx: DistContext, batch_size: int) -> None:
    """Each rank needs a non-empty, equal shard of every micro-batch."""
    if ctx.enabled and batch_size % ctx.world:
        raise UserError(
            f"train.batch_size: {batch_size} is not divisible by the {ctx.world} torchrun processes"
        )


def shard_rows(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Rows rank, rank + W, … of a (B, …) tensor."""
    return t[ctx.rank :: ctx.world] if ctx.enabled else t


def all_sum(x: float | int, ctx: DistContext, device: str) -> float:
    """Sum a scalar over ranks (identity for one process)."""
    if not ctx.enabled:
        return float(x)
    t = torch.tensor([float(x)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (e.g. after rank 0 wrote a checkpoint)."""
    if ctx.enabled:
        dist.barrier()
