"""Data containers shared by datasets, the loader, the engine and the evaluations."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ImageSet:
    """One split of a dataset.

    Small datasets keep `images` in memory as uint8 N x C x H x W; folder datasets keep `paths`
    and are decoded whole (aspect ratio kept, shorter side at most `load_size`), batched as a FolderBatch:
    by PIL in DataLoader workers, or (`decode`, see gpu_decode) JPEGs in batches on the device.
    Either way the batched augmentation is shared.
    `labels` is int64 N (single label) or float N x K (multi-label, e.g. VOC2007).
    """

    labels: torch.Tensor
    images: torch.Tensor | None = None
    paths: list[str] | None = None
    load_size: int | None = None  # folder datasets: the shorter side is reduced to this (None: full size)
    channels: int = 3
    # folder datasets: the test view's centre crop, a fraction of the shorter side (ImageNet 224/256 [DM
    # dataset.py]; 1.0 for the transfer sets [Kornblith]); in-memory sets keep their resize + crop
    eval_crop: float = 1.0
    decode: str = "auto"  # folder datasets: auto | cpu | device (gpu_decode.use_device_decode)

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
                        load_size=self.load_size, channels=self.channels, eval_crop=self.eval_crop,
                        decode=self.decode)

    def concat(self, other: "ImageSet") -> "ImageSet":
        """This split followed by `other` (e.g. train + val for a refit), same storage kind."""
        labels = torch.cat([self.labels, other.labels])
        if self.images is not None and other.images is not None:
            return ImageSet(labels=labels, images=torch.cat([self.images, other.images]))
        if self.paths is None or other.paths is None:
            raise ValueError("cannot concatenate an in-memory ImageSet with a folder one")
        return ImageSet(labels=labels, paths=self.paths + other.paths, load_size=self.load_size,
                        channels=self.channels, eval_crop=self.eval_crop, decode=self.decode)


@dataclass
class FolderBatch:
    """A batch of folder images of different sizes: each image at the top-left of a zero canvas.

    The augmentation crops each image inside its own `sizes` (so random-resized crops see the whole image,
    as [DM dataset.py] crops the decoded JPEG), and the test view takes a centre crop of `eval_crop` of each
    image's shorter side, resized bicubically [DM dataset.py _decode_and_center_crop]."""

    pixels: torch.Tensor  # uint8 B x C x H x W canvas (H, W: the largest height and width in the batch)
    sizes: torch.Tensor  # long B x 2: each image's (height, width)
    eval_crop: float = 1.0

    def __len__(self) -> int:
        return len(self.pixels)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "FolderBatch":
        return FolderBatch(self.pixels.to(device, non_blocking=non_blocking),
                           self.sizes.to(device, non_blocking=non_blocking), self.eval_crop)


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
    native_size: int  # side length of the stored images (folder datasets: the view size, 224 or load_size)
    metric: str = "top1"  # the dataset's own headline metric: top1 | mean_per_class | map11
    class_names: list[str] | None = None
    split_info: dict[str, Any] = field(default_factory=dict)  # how val/test were made (recorded in results)
    pretrain: ImageSet | None = None  # what pretraining sees when it is not `train` (e.g. train + val hold-out)

    @property
    def pretrain_images(self) -> ImageSet:
        """The pretraining split: `pretrain` where a dataset sets it ([DM] pretrains ImageNet on
        TRAIN_AND_VALID), else `train`."""
        return self.pretrain if self.pretrain is not None else self.train

    @property
    def channels(self) -> int:
        return self.train.channels

    def split(self, name: str) -> ImageSet:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}")
        return getattr(self, name)
