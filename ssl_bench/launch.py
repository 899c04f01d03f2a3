"""Process-group setup from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK)."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed() -> bool:
    """Join the process group torchrun describes; a no-op for a plain single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True
