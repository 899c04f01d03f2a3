"""The BYOL/SimCLR transfer datasets, file-backed (decoded later in DataLoader workers), through torchvision's
on-disk layout. Metrics as in BYOL Table 3 (protocols.md): top-1 for Food101, DTD; mean per-class accuracy for
Aircraft, Pets, Caltech-101, Flowers; 11-point mAP for VOC2007 (multi-label)."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..registry import register_dataset
from .bundle import assemble, check_load_size
from .datasets_torchvision import require_files
from .types import DatasetBundle, ImageSet

VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


@dataclass
class TransferSpec:
    cls_name: str  # torchvision.datasets class
    folder: str  # relative to root, where `files` must be
    files: list[str]
    archives: str
    metric: str
    splits: dict[str, str | None]  # our split -> torchvision split name (None: a stratified hold-out)
    kwargs: dict[str, Any] = field(default_factory=dict)
    split_arg: str = "split"


SPECS = {
    "dtd": TransferSpec("DTD", "dtd/dtd", ["images", "labels/train1.txt", "labels/val1.txt", "labels/test1.txt"],
                        "dtd-r1.0.1.tar.gz", "top1", {"train": "train", "val": "val", "test": "test"},
                        {"partition": 1}),
    "flowers102": TransferSpec("Flowers102", "flowers-102", ["jpg", "imagelabels.mat", "setid.mat"],
                               "102flowers.tgz + imagelabels.mat + setid.mat", "mean_per_class",
                               {"train": "train", "val": "val", "test": "test"}),
    "oxford_iiit_pet": TransferSpec("OxfordIIITPet", "oxford-iiit-pet",
                                    ["images", "annotations/trainval.txt", "annotations/test.txt"],
                                    "images.tar.gz + annotations.tar.gz", "mean_per_class",
                                    {"train": "trainval", "val": None, "test": "test"}),
    "fgvc_aircraft": TransferSpec("FGVCAircraft", "fgvc-aircraft-2013b/data",
                                  ["images", "variants.txt", "images_variant_train.txt", "images_variant_val.txt",
                                   "images_variant_test.txt"], "fgvc-aircraft-2013b.tar.gz", "mean_per_class",
                                  {"train": "train", "val": "val", "test": "test"}, {"annotation_level": "variant"}),
    "caltech101": TransferSpec("Caltech101", "caltech101", ["101_ObjectCategories"],
                               "caltech-101.zip (its 101_ObjectCategories.tar.gz)", "mean_per_class",
                               {"train": "all", "val": None, "test": None}),
    "food101": TransferSpec("Food101", "food-101", ["images", "meta/train.json", "meta/test.json"],
                            "food-101.tar.gz", "top1", {"train": "train", "val": None, "test": "test"}),
    "voc2007": TransferSpec("VOCDetection", "VOCdevkit/VOC2007",
                            ["JPEGImages", "Annotations", "ImageSets/Main/train.txt", "ImageSets/Main/val.txt",
                             "ImageSets/Main/test.txt"], "VOCtrainval_06-Nov-2007.tar + VOCtest_06-Nov-2007.tar",
                            "map11", {"train": "train", "val": "val", "test": "test"}, {"year": "2007"},
                            split_arg="image_set"),
}


def voc_labels(annotation_files: list[str]) -> torch.Tensor:
    """N x 20 float {0,1}: a class is present when any object of it (difficult ones included) is annotated."""
    index = {c: i for i, c in enumerate(VOC_CLASSES)}
    labels = torch.zeros(len(annotation_files), len(VOC_CLASSES))
    for row, path in enumerate(annotation_files):
        for obj in ET.parse(path).getroot().iter("object"):
            labels[row, index[obj.findtext("name").strip()]] = 1.0
    return labels


def _paths_labels(name: str, ds: Any) -> tuple[list[str], torch.Tensor, list[str]]:
    """Image paths, labels and class names from a constructed torchvision dataset (its file lists)."""
    if name == "caltech101":
        base = os.path.join(ds.root, "101_ObjectCategories")
        paths = [os.path.join(base, ds.categories[y], f"image_{i:04d}.jpg") for i, y in zip(ds.index, ds.y)]
        return paths, torch.as_tensor(ds.y, dtype=torch.long), list(ds.categories)
    if name == "voc2007":
        return list(ds.images), voc_labels(ds.targets), list(VOC_CLASSES)
    files = ds._images if name == "oxford_iiit_pet" else ds._image_files  # torchvision's file lists
    return [str(p) for p in files], torch.as_tensor(ds._labels, dtype=torch.long), list(ds.classes)


def load_transfer(name: str, root: str, download: bool, val_fraction: float, test_fraction: float,
                  split_seed: int, load_size: int) -> DatasetBundle:
    import torchvision.datasets as tvd

    check_load_size(name, load_size)
    spec = SPECS[name]
    cls = getattr(tvd, spec.cls_name)

    def build(split: str, dl: bool = False) -> Any:
        args = {spec.split_arg: split} if split != "all" else {}
        return cls(root, download=dl, **args, **spec.kwargs)

    def fetch() -> None:
        for split in {s for s in spec.splits.values() if s is not None}:
            build(split, dl=True)  # VOC2007 test comes in its own archive

    folder = Path(root) / spec.folder
    require_files(name, root, folder, spec.files, spec.archives, download, fetch)
    sets: dict[str, ImageSet | None] = {}
    for ours, theirs in spec.splits.items():
        sets[ours] = None
        if theirs is not None:
            paths, labels, class_names = _paths_labels(name, build(theirs))
            sets[ours] = ImageSet(labels=labels, paths=paths, load_size=load_size, channels=3)
    num_classes = len(class_names)
    return assemble(name, train=sets["train"], val=sets["val"], test=sets["test"], num_classes=num_classes,
                    val_fraction=val_fraction, test_fraction=test_fraction, split_seed=split_seed,
                    metric=spec.metric, class_names=class_names,
                    source={"folder": str(folder), "torchvision": spec.cls_name, "splits": spec.splits})


def _register(name: str) -> Callable[..., DatasetBundle]:
    def loader(root: str, download: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.2,
               split_seed: int = 0, load_size: int = 256) -> DatasetBundle:
        return load_transfer(name, root, download, val_fraction, test_fraction, split_seed, load_size)

    loader.__name__ = f"load_{name}"
    loader.__doc__ = f"{name} via torchvision's layout under root/{SPECS[name].folder}; metric {SPECS[name].metric}."
    return register_dataset(name)(loader)


for _name in SPECS:
    _register(_name)
