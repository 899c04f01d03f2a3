"""What a run cost: images seen, optimizer steps, pretraining wall time, device, peak memory, FLOPs per image.

Methods cost very different amounts per epoch (BYOL and MoCo run a target network, SimCLR does not), so every
record carries these numbers and tables can compare methods at equal compute. FLOPs are counted once per run
with torch.utils.flop_counter on one training step of a copy of the model (forward + backward of every view,
matmuls and convolutions; elementwise ops and the EMA update are not counted), divided by the images of that
step. Wall time sums the logged epochs, so it survives a resume; peak memory is this process's peak (CUDA
allocator on a GPU, resident set size on a CPU) and is absent when the weights were loaded, not trained here.
A wall-time budget's seconds per step are measured the same way, on a copy (step_time_s).
"""
from __future__ import annotations

import copy
import sys
import time
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ssl_bench import distributed as dist
from ssl_bench.engine.device import device_name
from ssl_bench.engine.trainer import TrainSettings, setup_loop, train_step


@torch.no_grad()
def _sample(data: Any, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.arange(min(n, len(data)))
    part = data.subset(idx)
    from ssl_bench.data.loader import iterate_batches

    return next(iter(iterate_batches(part, len(idx), shuffle=False, generator=None, drop_last=False, device=device)))


def flops_per_image(method: nn.Module, data: Any, augment: Callable, device: torch.device,
                    n_images: int = 2) -> float | None:
    """FLOPs of one training step (forward + backward) per source image, on a copy: training is untouched."""
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(method).to(device).train()
    images, labels = _sample(data, n_images, device)
    views = augment(images, torch.Generator(device=device).manual_seed(0))  # its own generator: no RNG drawn
    try:
        with dist.local_only(), FlopCounterMode(display=False) as counter:
            out = model(views, labels if getattr(model, "needs_labels", False) else None)
            out["loss"].backward()
    except Exception as exc:  # noqa: BLE001 - a model the counter cannot trace: the record says so
        print(f"warning: FLOPs per image not measured ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None
    return counter.get_total_flops() / len(images)


def _batches(data: Any, per_rank: int, s: TrainSettings, n: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """n training batches as the trainer draws them (an epoch shorter than n starts over), own generators."""
    from ssl_bench.data.loader import iterate_batches

    left = n
    for epoch in range(n):
        batches = iterate_batches(data, per_rank, shuffle=True, generator=torch.Generator().manual_seed(epoch),
                                  drop_last=True, device=s.device, num_workers=s.num_workers, rank=dist.rank(),
                                  world_size=dist.world_size())
        for batch in batches:
            yield batch
            left -= 1
            if left == 0:
                return


def step_time_s(model: nn.Module, data: Any, augment: Callable, s: TrainSettings, warmup: int = 3,
                timed: int = 10) -> float:
    """Seconds of one training step (batch fetch, augmentation, forward, backward, optimizer and EMA update),
    for a wall-time budget: the mean of `timed` steps after `warmup` ones, run exactly as the trainer runs them
    (engine.trainer.train_step, same settings, device and wrapping) on a copy with its own optimizer, on a
    forked RNG and its own generators: the real model and every random stream are untouched. Under torchrun
    every rank measures (the copy's collectives need them all). With pretrain.compile the copy is compiled too,
    in the warm-up steps. Not included: the online head's small step."""
    import tempfile
    from pathlib import Path

    devices = [s.device] if s.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), tempfile.TemporaryDirectory() as tmp:
        loop = setup_loop(copy.deepcopy(model), len(data), s, Path(tmp))
        pairs, gen = loop.model.momentum_pairs(), torch.Generator(device=s.device).manual_seed(0)
        loop.net.train()
        loss, t0 = None, time.perf_counter()
        for i, (images, labels) in enumerate(_batches(data, loop.per_rank, s, warmup + timed)):
            if i == warmup and loss is not None:
                float(loss.detach())  # a host sync: the warm-up steps have finished on the device
                t0 = time.perf_counter()
            loss = train_step(loop, augment, images, labels, gen, pairs, i)[0]
        float(loss.detach())
        elapsed = time.perf_counter() - t0
        del loop, pairs
    if s.device.type == "cuda":
        torch.cuda.empty_cache()
    return elapsed / timed


def compute_record(stats: dict[str, Any] | None, batch_size: int, device: torch.device) -> dict[str, Any]:
    """The flat `compute_*` fields every result row of a run carries (selectable as table rows/columns)."""
    stats = stats or {}
    steps = stats.get("steps") or 0
    return {"compute_images_seen": steps * batch_size, "compute_steps": steps,
            "compute_wall_s": stats.get("train_wall_total_s", stats.get("train_time_s")),
            "compute_flops_per_image": stats.get("flops_per_image"),
            "compute_device": stats.get("device") or device_name(device),
            "compute_device_count": stats.get("device_count", dist.world_size()),
            "compute_peak_memory_mb": stats.get("peak_memory_mb")}
