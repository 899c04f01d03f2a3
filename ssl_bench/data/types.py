"""Data containers shared by datasets, the loader, the engine and the evaluations."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ImageSet:
    """One split of a dataset.

    Small datasets keep `images` in memory as uint8 N x C x H x W; folder datasets keep `paths`
    and are decoded to uint8 (C x load_size x load_size) in DataLoader workers. Either way the
    batches that come out are uint8 tensors, so the batched augmentation is shared.
    `labels` is int64 N (single label) or float N x K (multi-label, e.g. VOC2007).
    """

    labels: torch.Tensor
    images: torch.Tensor | None = None
    paths: list[str] | None = None
    load_size: int | None = None  # folder datasets: decoded side length
    channels: int = 3

    def __post_init__(self) -> None:
        if (self.images is None) == (self.paths is None):
            raise ValueError("ImageSet needs exactly one of images or paths")
        if self.images is not None:
            if self.images.dtype != torch.uint8 or self.images.dim() != 4:
                raise ValueError("ImageSet.images must be uint8 N x C x H x W")
            if len(self.images) != len(self.labels):
                raise ValueError("images and labels differ in length")
            self.channels = int(self.images.shape[1])
        elif len(self.paths) != len(self.labels):
            raise ValueError("paths and labels differ in length")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    @property
    def multilabel(self) -> bool:
        return self.labels.dim() == 2

    def subset(self, indices: torch.Tensor | list[int]) -> "ImageSet":
        idx = torch.as_tensor(indices, dtype=torch.long)
        if self.images is not None:
            return ImageSet(labels=self.labels[idx], images=self.images[idx], channels=self.channels)
        return ImageSet(labels=self.labels[idx], paths=[self.paths[i] for i in idx.tolist()],
                        load_size=self.load_size, channels=self.channels)


@dataclass
class DatasetBundle:
    """A dataset with deterministic train/val/test splits and what the model needs to know of it."""

    name: str
    train: ImageSet
    val: ImageSet
    test: ImageSet
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    native_size: int  # side length of the stored images (folder datasets: load_size)
    metric: str = "top1"  # the dataset's own headline metric: top1 | mean_per_class | map11
    class_names: list[str] | None = None
    split_info: dict[str, Any] = field(default_factory=dict)  # how val/test were made (recorded in results)

    @property
    def channels(self) -> int:
        return self.train.channels

    def split(self, name: str) -> ImageSet:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}")
        return getattr(self, name)
