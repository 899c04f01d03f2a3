"""Turn a dataset's raw splits into a DatasetBundle: fixed stratified val/test hold-outs, channel statistics,
and a record of how the splits were made (stored with every result)."""
from __future__ import annotations

from typing import Any

import torch

from ssl_bench.errors import UserError
from ssl_bench.data.splits import stratified_split
from ssl_bench.data.types import DatasetBundle, ImageSet

VAL_HOLDOUT = "stratified hold-out of train"  # split_info["val"]["made"] when val was carved out of train
# torchvision's ImageNet normalisation, used for folder datasets whose pixels are never all in memory
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_fractions(name: str, val_fraction: float, test_fraction: float) -> None:
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
            raise UserError(f"dataset {name}: params.{key}: bad value {value!r}; allowed: a number in (0, 1)")


def check_train_size(name: str, train_size: object, available: int) -> None:
    if train_size is None:
        return
    if isinstance(train_size, bool) or not isinstance(train_size, int) or not 1 <= train_size <= available:
        raise UserError(f"dataset {name}: params.train_size: bad value {train_size!r}; allowed: null (all) or an "
                        f"integer in [1, {available}] (the train images left after the val hold-out)")


# Folder datasets: views are resized to 224 px [DM dataset.py], or to load_size where that is smaller
FOLDER_VIEW_SIZE = 224


def check_load_size(name: str, load_size: object) -> None:
    if load_size is None:
        return
    if isinstance(load_size, bool) or not isinstance(load_size, int) or load_size < 1:
        raise UserError(f"dataset {name}: params.load_size: bad value {load_size!r}; allowed: an integer >= 1 (the "
                        "largest shorter side images are decoded at)")


def check_eval_crop(name: str, eval_crop: object) -> None:
    if isinstance(eval_crop, bool) or not isinstance(eval_crop, (int, float)) or not 0 < eval_crop <= 1:
        raise UserError(f"dataset {name}: params.eval_crop: bad value {eval_crop!r}; allowed: a number in (0, 1] "
                        "(the test view's centre crop as a fraction of the shorter side; 0.875 = 224 of 256)")


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 N x C x H x W images, on the 0..1 scale (chunked: no float copy
    of the whole set)."""
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].transpose(0, 1).reshape(c, -1).double()
        total += x.sum(1)
        squares += (x * x).sum(1)
    count = images.numel() // c
    mean = total / count
    var = (squares / count - mean * mean).clamp_min(0)
    return tuple((mean / 255).tolist()), tuple((var.sqrt() / 255).tolist())


def assemble(name: str, *, train: ImageSet, test: ImageSet | None, num_classes: int, val_fraction: float,
             test_fraction: float, split_seed: int, val: ImageSet | None = None, metric: str = "top1",
             class_names: list[str] | None = None, source: Any = None,
             train_size: int | None = None) -> DatasetBundle:
    """Build the bundle. Missing test: a stratified `test_fraction` of all images; missing val: a stratified
    `val_fraction` of the remaining train images; `train_size`: keep a stratified subset of that many train
    images (val and test stay whole, so numbers stay comparable). Hold-outs use `split_seed` only (never the
    run seed)."""
    check_fractions(name, val_fraction, test_fraction)
    info: dict[str, Any] = {"split_seed": split_seed, "source": source}
    if test is None:
        keep, held = stratified_split(train.labels, test_fraction, split_seed)
        train, test = train.subset(keep), train.subset(held)
        info["test"] = {"made": "stratified hold-out of all images", "fraction": test_fraction}
    else:
        info["test"] = {"made": "official"}
    if val is None:
        keep, held = stratified_split(train.labels, val_fraction, split_seed + 1)
        train, val = train.subset(keep), train.subset(held)
        info["val"] = {"made": VAL_HOLDOUT, "fraction": val_fraction}
    else:
        info["val"] = {"made": "official"}
    check_train_size(name, train_size, len(train))
    if train_size is not None and train_size < len(train):
        _, kept = stratified_split(train.labels, train_size / len(train), split_seed + 2)
        train = train.subset(kept)
        info["train"] = {"made": "stratified subset of train", "size": len(train)}  # >= 1 per class
    info["sizes"] = {"train": len(train), "val": len(val), "test": len(test)}
    if train.in_memory:
        mean, std = channel_stats(train.images)
        native = int(train.images.shape[-1])
    else:
        mean, std = IMAGENET_MEAN[:train.channels], IMAGENET_STD[:train.channels]
        native = min(FOLDER_VIEW_SIZE, train.load_size or FOLDER_VIEW_SIZE)
    return DatasetBundle(name=name, train=train, val=val, test=test, num_classes=num_classes, mean=mean, std=std,
                         native_size=native, metric=metric, class_names=class_names, split_info=info)


def pretrain_on_val_holdout(bundle: DatasetBundle, enabled: bool, name: str) -> DatasetBundle:
    """With `enabled`, pretraining sees train + a val split carved out of train (not an official val), as [DM]
    pretrains ImageNet on TRAIN_AND_VALID and solo-learn / lightly on all of CIFAR train; val still only
    chooses hyperparameters and test is never seen."""
    if not isinstance(enabled, bool):
        raise UserError(f"dataset {name}: params.pretrain_on_val: bad value {enabled!r}; allowed: true or false")
    if enabled and bundle.split_info.get("val", {}).get("made") == VAL_HOLDOUT:
        bundle.pretrain = bundle.train.concat(bundle.val)
        bundle.split_info["pretrain"] = {"made": "train + val hold-out", "size": len(bundle.pretrain)}
    return bundle


def uint8_images(array: Any, channels_last: bool = False) -> torch.Tensor:
    """numpy N x H x W (gray) or N x H x W x C (channels_last) -> contiguous uint8 N x C x H x W."""
    x = torch.as_tensor(array)
    if x.dtype != torch.uint8:
        x = x.round().clamp(0, 255).to(torch.uint8)
    if x.dim() == 3:
        return x.unsqueeze(1).contiguous()
    return (x.permute(0, 3, 1, 2) if channels_last else x).contiguous()
