"""Process-group helpers. Everything here is the identity on a single process."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn


_local = 0  # > 0 inside local_only()


def is_dist() -> bool:
    return _local == 0 and dist.is_available() and dist.is_initialized()


@contextmanager
def local_only() -> Iterator[None]:
    """Inside, this process acts alone (rank 0 of 1, no collectives): evaluations run once, on rank 0, while
    the other ranks wait at the next barrier, instead of being repeated by every rank."""
    global _local
    _local += 1
    try:
        yield
    finally:
        _local -= 1


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return rank() == 0


def say(msg: str) -> None:
    """Print once per process group (rank 0), flushed: progress lines of a run."""
    if is_main():
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stdout)  # on a terminal, above the progress bars instead of through them
        sys.stdout.flush()


def barrier() -> None:
    if is_dist():
        dist.barrier()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradient over ranks and returns this rank's slice.

    Summing is right because every rank's loss uses every rank's rows; DDP then divides the parameter
    gradients by the world size, which makes the result the gradient of the mean loss.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        n = grad.shape[0] // world_size()
        return grad[rank() * n:(rank() + 1) * n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate x over ranks in rank order, gradients flowing back to every rank's share."""
    return _GatherWithGrad.apply(x) if world_size() > 1 else x


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate x over ranks in rank order, detached (keys, queue entries, eval features)."""
    if world_size() == 1:
        return x.detach()
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.detach().contiguous())
    return torch.cat(out)


class _AllReduceWithGrad(torch.autograd.Function):
    """Sum over ranks; the backward sums the incoming gradients over ranks (same argument as above)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of x over ranks (SyncBatchNorm statistics on CPU)."""
    return _AllReduceWithGrad.apply(x) if world_size() > 1 else x


@torch.no_grad()
def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of x over ranks, detached (logged losses: every rank logs and decides on the same number)."""
    if world_size() == 1:
        return x.detach()
    x = x.detach().clone()
    dist.all_reduce(x)
    return x / world_size()


@torch.no_grad()
def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Overwrite every parameter and buffer with rank `src`'s values, so all ranks hold one model."""
    if world_size() == 1:
        return
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src)
