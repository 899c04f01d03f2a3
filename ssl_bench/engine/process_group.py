"""Process-group setup from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT)."""
from __future__ import annotations

import atexit
import os
from datetime import timedelta

import torch
import torch.distributed as dist

from ssl_bench.errors import UserError


def refuse_pinned_cuda(device: str) -> None:
    """Under torchrun (WORLD_SIZE > 1) `cuda:N` would put every rank on GPU N: refused, before any process group
    or CUDA work. `cuda` and `auto` give rank i GPU LOCAL_RANK; CUDA_VISIBLE_DEVICES chooses the GPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device.startswith("cuda:") and world > 1:
        raise UserError(f"pretrain.device: bad value {device!r} under torchrun ({world} processes): every rank "
                        "would use that one GPU; allowed: cuda or auto (each rank takes GPU LOCAL_RANK; choose the "
                        "GPUs with CUDA_VISIBLE_DEVICES)")


def init_distributed() -> bool:
    """Join the process group torchrun describes; a no-op for a plain single process.

    With GPUs the group carries both backends (nccl for CUDA tensors, gloo for CPU ones), so a suite whose
    pretrain.device is cpu, or a CPU-side gather, still works; without GPUs it is gloo alone.
    Each rank is pinned to GPU LOCAL_RANK before any CUDA work.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UserError(f"torchrun --nproc_per_node: local rank {local} has no GPU (this node shows "
                            f"{torch.cuda.device_count()}); allowed: at most one process per visible GPU")
        torch.cuda.set_device(local)
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    # Evaluations run on rank 0 alone while the other ranks wait at a barrier: allow them hours, not the
    # default 10-30 minutes (SSL_BENCH_DIST_TIMEOUT_S, default 6 h)
    timeout = timedelta(seconds=float(os.environ.get("SSL_BENCH_DIST_TIMEOUT_S", 6 * 3600)))
    dist.init_process_group(backend=backend, timeout=timeout)
    atexit.register(_shutdown)
    return True


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
