"""`image_folder`: any folder of class subfolders (ImageNet, Imagenette, your own), decoded in DataLoader workers.

If the folder holds train/ and val/ or test/ subfolders they are the official splits: with train/ + val/ only
(the ImageNet layout) val/ becomes the test split and a stratified val is held out of train/.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import UserError
from ..registry import register_dataset
from .bundle import assemble, check_load_size
from .types import DatasetBundle, ImageSet

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def class_folders(path: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def scan(path: Path, classes: list[str] | None = None) -> tuple[list[str], torch.Tensor, list[str]]:
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
        files = []
        for dirpath, _, names in os.walk(path / cls, followlinks=True):
            files += [os.path.join(dirpath, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
        files.sort()
        paths += files
        labels += [index[cls]] * len(files)
    if not paths:
        raise UserError(f"{path}: no images in class subfolders; allowed: a folder of class folders holding "
                        f"images ({', '.join(IMAGE_EXTENSIONS)})")
    return paths, torch.tensor(labels, dtype=torch.long), classes


@register_dataset("image_folder")
def load_image_folder(root: str, download: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.2,
                      split_seed: int = 0, path: str | None = None, load_size: int = 256) -> DatasetBundle:
    """Images under `path` (class subfolders, or train/ + val/ and/or test/ of class subfolders), resized so
    the shorter side is `load_size` and center-cropped to load_size x load_size when loaded."""
    if not path:
        raise UserError("dataset image_folder: params.path is missing; allowed: a folder of class subfolders "
                        "(optionally inside train/ and val/ or test/)")
    base = Path(os.path.expanduser(str(path)))
    if not base.is_dir():
        raise UserError(f"dataset image_folder: params.path: {str(base)!r} is not an existing folder; allowed: a "
                        "folder of class subfolders (optionally inside train/ and val/ or test/)")
    check_load_size("image_folder", load_size)
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
    if not class_folders(parts["train"]):
        raise UserError(f"dataset image_folder: params.path: {str(parts['train'])!r} has no class subfolders; "
                        "allowed: a folder of class subfolders (optionally inside train/ and val/ or test/)")
    paths, labels, classes = scan(parts["train"])
    sets: dict[str, ImageSet | None] = {"train": ImageSet(labels=labels, paths=paths, load_size=load_size)}
    for split in ("val", "test"):
        sets[split] = None
        if split in parts:
            p, y, _ = scan(parts[split], classes)
            sets[split] = ImageSet(labels=y, paths=p, load_size=load_size)
    source = {"path": str(base), **{f"{k}_folder": str(v) for k, v in parts.items()}}
    return assemble("image_folder", train=sets["train"], val=sets["val"], test=sets["test"],
                    num_classes=len(classes), val_fraction=val_fraction, test_fraction=test_fraction,
                    split_seed=split_seed, class_names=classes, source=source)
