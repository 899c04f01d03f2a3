"""Batches of uint8 images (B x C x H x W) and labels on the device, from in-memory or file-backed ImageSets.

Sharding matches torch's DistributedSampler: one permutation per epoch, identical on every rank (the caller
seeds `generator` the same everywhere); rank r takes positions r, r + W, r + 2W, ... so ranks see disjoint
samples whose union is the epoch. Without drop_last the order is padded by wrapping around so that every
rank gets the same number of batches (collectives stay in step).
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

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


class PathStore:
    """File paths packed into one byte buffer: forked DataLoader workers share it without touching a
    million Python string refcounts (which would copy the pages)."""

    def __init__(self, paths: list[str]):
        encoded = [p.encode() for p in paths]
        self.offsets = np.cumsum([0] + [len(b) for b in encoded], dtype=np.int64)
        self.buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.buffer[self.offsets[i]:self.offsets[i + 1]].tobytes().decode()


def decode_image(path: str, size: int, channels: int = 3) -> torch.Tensor:
    """PIL decode -> RGB or L -> shorter side resized to `size` (bilinear) -> center crop size x size ->
    uint8 C x size x size. Sizes and crop offsets follow torchvision's Resize(size) + CenterCrop(size).
    (Folder datasets decode the whole image instead: decode_whole.)"""
    from PIL import Image

    mode = "RGB" if channels == 3 else "L"
    with Image.open(path) as img:
        img.draft(mode, (size, size))  # JPEG only: DCT-domain downscale to a size still >= `size`
        img = img.convert(mode)
    w, h = img.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.BILINEAR)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.array(img, dtype=np.uint8))
    return x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1).contiguous()


def reduced_size(h: int, w: int, max_short: int | None) -> tuple[int, int]:
    """(height, width) of an h x w image reduced until its shorter side is at most `max_short` and its longer
    side at most 2 * max_short, aspect ratio kept, never enlarged (None: unchanged)."""
    scale = 1.0 if max_short is None else min(1.0, max_short / min(w, h), 2 * max_short / max(w, h))
    return (h, w) if scale >= 1.0 else (max(1, round(h * scale)), max(1, round(w * scale)))


def decode_whole(path: str, max_short: int | None, channels: int = 3) -> torch.Tensor:
    """PIL decode -> RGB or L, the whole image (aspect ratio kept) -> uint8 C x h x w. The image is reduced
    (bicubic, antialiased; JPEGs first at a DCT scale that stays large enough) until its shorter side is at
    most `max_short` and its longer side at most 2 * max_short (a batch is padded to its largest image, so
    this bounds memory; it shrinks only images wider than 2:1); smaller images are never enlarged. None:
    full size. Crops then come from the whole image, as [DM dataset.py] crops the decoded JPEG. The size
    follows from the file's own size (not the draft's, whose sides are rounded up), as on the device path."""
    from PIL import Image

    mode = "RGB" if channels == 3 else "L"
    with Image.open(path) as img:
        new_h, new_w = reduced_size(img.height, img.width, max_short)
        if max_short is not None:
            img.draft(mode, (max_short, max_short))  # JPEG only: never below max_short on either side
        img = img.convert(mode)
    if (new_h, new_w) != (img.height, img.width):
        img = img.resize((new_w, new_h), Image.BICUBIC)
    x = torch.from_numpy(np.array(img, dtype=np.uint8))
    return x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1).contiguous()


class DecodedFolder(Dataset):
    """Map-style dataset over an ImageSet's paths; workers decode whole images (see decode_whole)."""

    cache_key = "_decoded"  # where folder_dataset keeps it on the ImageSet

    def __init__(self, data: ImageSet):
        self.paths = PathStore(data.paths)
        self.labels = data.labels
        self.max_short = data.load_size
        self.channels = data.channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from ssl_bench.data.image_folder import decode_checked  # names a file that does not decode

        return decode_checked(self.paths[i], self.max_short, self.channels), self.labels[i]


def pad_collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(canvas uint8 B x C x H x W with each image top-left, sizes B x 2, labels) from images of any size."""
    sizes = torch.tensor([img.shape[-2:] for img, _ in items], dtype=torch.long).view(-1, 2)
    h, w = (int(m) for m in sizes.amax(0)) if len(items) else (0, 0)
    canvas = torch.zeros(len(items), items[0][0].shape[0] if items else 0, h, w, dtype=torch.uint8)
    for k, (img, _) in enumerate(items):
        canvas[k, :, :img.shape[-2], :img.shape[-1]] = img
    return canvas, sizes, torch.stack([torch.as_tensor(y) for _, y in items])


def folder_dataset(data: ImageSet, cls: type[DecodedFolder] = DecodedFolder) -> DecodedFolder:
    """`cls(data)`, built once per ImageSet and class (packing a million paths takes a second) and kept on it,
    so it lives as long as the set."""
    ds = data.__dict__.get(cls.cache_key)
    if ds is None:
        ds = data.__dict__[cls.cache_key] = cls(data)
    return ds


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
    from ssl_bench.data.gpu_decode import device_batches, use_device_decode  # it builds on this module

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
