"""A folder ImageSet as a map-style dataset for DataLoader workers: paths packed in one buffer (no per-path
Python objects to copy into each worker), whole images decoded there, batches padded onto one canvas."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ssl_bench.data.decode import decode_checked
from ssl_bench.data.types import ImageSet


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
