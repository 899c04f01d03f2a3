"""`image_folder`: any folder of class subfolders (ImageNet, Imagenette, your own), decoded in DataLoader workers
(PIL) or, for JPEGs, in batches on the CUDA device (`decode`, see gpu_decode).

If the folder holds train/ and val/ or test/ subfolders they are the official splits: with train/ + val/ only
(the ImageNet layout) val/ becomes the test split and a stratified val is held out of train/.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

import torch

from ssl_bench.errors import DatasetError, UserError
from ssl_bench.registry import register_dataset
from ssl_bench.data.bundle import assemble, check_eval_crop, check_load_size, pretrain_on_val_holdout
from ssl_bench.data.decode import check_decode
from ssl_bench.data.types import DatasetBundle, ImageSet

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif")


NO_FOLDER = "allowed: a folder of class subfolders (optionally inside train/ and val/ or test/)"


def class_folders(path: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def _image_files(folder: Path) -> Iterator[str]:
    for dirpath, _, names in os.walk(folder, followlinks=True):
        yield from (os.path.join(dirpath, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS))


def _empty_class(folder: Path, where: str) -> DatasetError:
    return DatasetError(f"{where}: class folder {str(folder)!r} holds no images; allowed: at least one image "
                        f"({', '.join(IMAGE_EXTENSIONS)}) in every class folder")


def scan(path: Path, classes: list[str] | None = None,
         where: str = "dataset image_folder: params.path") -> tuple[list[str], torch.Tensor, list[str]]:
    """All images under path/<class>/ (recursively), sorted; labels index `classes` (default: the folders)."""
    found = class_folders(path)
    classes = classes if classes is not None else found
    index = {c: i for i, c in enumerate(classes)}
    unknown = [c for c in found if c not in index]
    if unknown:
        raise UserError(f"{path}: class folders {unknown[:5]} are not in the train split's classes; allowed: the "
                        "same class folder names as train/")
    paths: list[str] = []
    labels: list[int] = []
    for cls in found:
        files = sorted(_image_files(path / cls))
        if not files:  # a class nothing can be learned or tested on: a mistake, not a class
            raise _empty_class(path / cls, where)
        paths += files
        labels += [index[cls]] * len(files)
    if not paths:
        raise UserError(f"{path}: no images in class subfolders; allowed: a folder of class folders holding "
                        f"images ({', '.join(IMAGE_EXTENSIONS)})")
    return paths, torch.tensor(labels, dtype=torch.long), classes


def split_folders(path: object, where: str) -> dict[str, Path]:
    """{split: folder} for `path`: the folder itself as train, or its train/ and val/ and/or test/."""
    if not path or not isinstance(path, str):
        raise UserError(f"{where}: bad value {path!r}; {NO_FOLDER}")
    base = Path(os.path.expanduser(path))
    if not base.is_dir():
        raise UserError(f"{where}: {str(base)!r} is not an existing folder; {NO_FOLDER}")
    have = {p for p in ("train", "val", "test") if (base / p).is_dir()}
    parts = {"train": base}
    # split layout only when train/ itself holds class folders (a class may be called "train", as in VOC)
    if "train" in have and class_folders(base / "train"):
        parts = {"train": base / "train"}
        if "test" in have:
            parts["test"] = base / "test"
            if "val" in have:
                parts["val"] = base / "val"
        elif "val" in have:
            parts["test"] = base / "val"  # ImageNet layout: the official val set is what gets reported
    classes = class_folders(parts["train"])
    if not classes:
        raise UserError(f"{where}: {str(parts['train'])!r} has no class subfolders; {NO_FOLDER}")
    if len(classes) == 1:  # every label the same: each evaluation would score 100%
        raise DatasetError(f"{where}: {str(parts['train'])!r} has one class folder ({classes[0]!r}); allowed: at "
                           "least 2 class folders (one per class)")
    return parts


def check_params(params: dict[str, Any], field: str) -> None:
    """Validation without decoding anything: the folder, its splits, >= 2 classes, no empty class folder.
    Stops at the first image of each class folder, so even ImageNet's layout is checked in about a second."""
    check_decode(params.get("decode", "auto"), f"{field}.decode")
    where = f"{field}.path"
    for folder in split_folders(params.get("path"), where).values():
        for cls in class_folders(folder):
            if next(_image_files(folder / cls), None) is None:
                raise _empty_class(folder / cls, where)


@register_dataset("image_folder")
def load_image_folder(root: str, download: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.2,
                      split_seed: int = 0, path: str | None = None, load_size: int | None = 256,
                      eval_crop: float = 0.875, pretrain_on_val: bool = True, decode: str = "auto") -> DatasetBundle:
    """Your own images under `path`: class subfolders, or train/ + val/ and/or test/ of class subfolders.

    Decoded whole with the shorter side reduced to at most `load_size` (and the longer to 2 * load_size; a huge value keeps
    full size as [DM] decodes, but a batch is padded to its largest image). Views are 224 px (or load_size
    when smaller); the test view is a centre crop of `eval_crop` of the shorter side (0.875 = 224 of 256
    [DM dataset.py]). With `pretrain_on_val` pretraining also sees the val hold-out carved from train, as
    [DM] pretrains on TRAIN_AND_VALID; val still only chooses hyperparameters. `decode`: auto (JPEGs decoded
    in batches on the device when batches go to a CUDA device that torchvision decodes on), cpu (PIL in the
    DataLoader workers) or device (torchvision's decode_jpeg on the batch's device, the CPU included)."""
    parts = split_folders(path, "dataset image_folder: params.path")
    check_load_size("image_folder", load_size)
    check_eval_crop("image_folder", eval_crop)
    check_decode(decode, "dataset image_folder: params.decode")
    paths, labels, classes = scan(parts["train"])
    folder_set = {"load_size": load_size, "eval_crop": float(eval_crop), "decode": decode}
    sets: dict[str, ImageSet | None] = {"train": ImageSet(labels=labels, paths=paths, **folder_set)}
    for split in ("val", "test"):
        sets[split] = None
        if split in parts:
            p, y, _ = scan(parts[split], classes)
            sets[split] = ImageSet(labels=y, paths=p, **folder_set)
    base = Path(os.path.expanduser(str(path)))
    source = {"path": str(base), **{f"{k}_folder": str(v) for k, v in parts.items()}}
    bundle = assemble("image_folder", train=sets["train"], val=sets["val"], test=sets["test"],
                      num_classes=len(classes), val_fraction=val_fraction, test_fraction=test_fraction,
                      split_seed=split_seed, class_names=classes, source=source)
    bundle.split_info["manifest"] = folder_manifest(base, {parts[k]: s.paths for k, s in sets.items() if s is not None},
                                                    len(classes))
    return pretrain_on_val_holdout(bundle, pretrain_on_val, "image_folder")


def folder_manifest(base: Path, listed: dict[Path, list[str]], num_classes: int) -> dict[str, Any]:
    """What the folder held, so two folders given one label (ImageNet-100 has several class lists in use) are
    never averaged or compared silently: images per split folder, classes, and the sha256 of the sorted file
    list relative to `base` (one path per line, '/'-separated); `id` is its first 12 hex digits."""
    rel: list[str] = []
    images: dict[str, int] = {}
    for folder, paths in listed.items():
        prefix = len(str(folder)) + 1
        top = folder.relative_to(base).as_posix()
        images[top] = len(paths)
        rel += [(p[prefix:] if top == "." else f"{top}/{p[prefix:]}").replace(os.sep, "/") for p in paths]
    digest = hashlib.sha256("\n".join(sorted(rel)).encode()).hexdigest()
    return {"id": digest[:12], "files_sha256": digest, "images": images, "classes": num_classes}


load_image_folder.check_params = check_params  # type: ignore[attr-defined]  # run by suite validation
