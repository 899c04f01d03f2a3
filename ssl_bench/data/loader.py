"""Batches of uint8 images (B x C x H x W) and labels on the device, from in-memory or file-backed ImageSets.

Sharding matches torch's DistributedSampler: one permutation per epoch, identical on every rank (the caller
seeds `generator` the same everywhere); rank r takes positions r, r + W, r + 2W, ... so ranks see disjoint
samples whose union is the epoch. Without drop_last the order is padded by wrapping around so that every
rank gets the same number of batches (collectives stay in step).
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import DataLoader

from ssl_bench.data.folder_dataset import folder_dataset, pad_collate
from ssl_bench.data.gpu_decode import device_batches, use_device_decode
from ssl_bench.data.types import FolderBatch, ImageSet


def per_rank_count(n: int, drop_last: bool, world_size: int) -> int:
    return n // world_size if drop_last else math.ceil(n / world_size)


def num_batches(n: int, batch_size: int, drop_last: bool, world_size: int = 1) -> int:
    """Batches per epoch on each rank (`batch_size` is the per-rank batch)."""
    per = per_rank_count(n, drop_last, world_size)
    return per // batch_size if drop_last else math.ceil(per / batch_size)


def shard_indices(n: int, *, shuffle: bool, generator: torch.Generator | None, drop_last: bool, rank: int = 0,
                  world_size: int = 1, epoch: int = 0) -> torch.Tensor:
    """This rank's sample order for one epoch (int64). Without a generator a shuffle is seeded by `epoch`."""
    if shuffle:
        gen = generator if generator is not None else torch.Generator().manual_seed(epoch)
        order = torch.randperm(n, generator=gen)
    else:
        order = torch.arange(n)
    if world_size == 1:
        return order
    per = per_rank_count(n, drop_last, world_size)
    total = per * world_size
    if total > n and n > 0:
        order = order.repeat(math.ceil(total / n))
    return order[:total][rank::world_size]


def iterate_batches(data: ImageSet, batch_size: int, *, shuffle: bool, generator: torch.Generator | None,
                    drop_last: bool, device: torch.device | str, num_workers: int = 0, rank: int = 0,
                    world_size: int = 1, epoch: int = 0) -> Iterator[tuple[torch.Tensor | FolderBatch, torch.Tensor]]:
    """Yield (images, labels) on `device` for this rank's shard of one epoch: uint8 B x C x H x W for an
    in-memory set, a FolderBatch (whole images of any size on one canvas) for a folder set, whose JPEGs are
    decoded on the device when data.decode asks for it (gpu_decode), else by PIL in the workers."""
    device = torch.device(device)
    order = shard_indices(len(data), shuffle=shuffle, generator=generator, drop_last=drop_last, rank=rank,
                          world_size=world_size, epoch=epoch)
    count = num_batches(len(order), batch_size, drop_last)
    pin = device.type == "cuda"
    if data.in_memory:
        yield from _memory_batches(data, order, batch_size, count, device, pin)
        return
    if use_device_decode(data.decode, device):
        yield from device_batches(data, order, batch_size, drop_last=drop_last, device=device,
                                  num_workers=num_workers)
        return
    loader = DataLoader(folder_dataset(data), batch_size=batch_size, sampler=order.tolist(), drop_last=drop_last,
                        num_workers=num_workers, pin_memory=pin, persistent_workers=False, collate_fn=pad_collate,
                        prefetch_factor=4 if num_workers > 0 else None)
    for pixels, sizes, labels in loader:
        batch = FolderBatch(pixels, sizes, data.eval_crop).to(device, non_blocking=pin)
        yield batch, labels.to(device, non_blocking=pin)


def _memory_batches(data: ImageSet, order: torch.Tensor, batch_size: int, count: int, device: torch.device,
                    pin: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    images, labels = data.images, data.labels
    if images.device != torch.device("cpu"):  # already on an accelerator: index there
        order = order.to(images.device)
    for b in range(count):
        idx = order[b * batch_size:(b + 1) * batch_size]
        x, y = images[idx].contiguous(), labels[idx.to(labels.device)]  # STL-10 images are a transposed view
        if pin and x.device.type == "cpu":
            x, y = x.pin_memory(), y.pin_memory()
        yield x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)
