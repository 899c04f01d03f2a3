"""The BYOL/SimCLR transfer datasets, file-backed (decoded later in DataLoader workers), through torchvision's
on-disk layout. Metrics as in BYOL Table 3 (protocols.md): top-1 for Food101, DTD; mean per-class accuracy for
Aircraft, Pets, Caltech-101, Flowers; 11-point mAP for VOC2007 (multi-label). Splits are [Kornblith]'s, which
BYOL and SimCLR used: the official ones, Caltech-101 with 30 random training images per class. Birdsnap, SUN397
and Stanford Cars: datasets_kornblith.py."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ssl_bench.registry import register_dataset
from ssl_bench.data.bundle import assemble, check_load_size
from ssl_bench.data.image_folder import IMAGE_EXTENSIONS, class_folders
from ssl_bench.data.datasets_torchvision import require_files
from ssl_bench.data.types import DatasetBundle, ImageSet

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
    # a dataset whose split is not torchvision's: (root, spec, split_seed) -> ({split: (paths, labels)}, classes)
    lister: Callable[..., tuple[dict[str, Any], list[str]]] | None = None
    fetch: Callable[[str], None] | None = None  # download for a dataset torchvision cannot fetch whole


def caltech_splits(root: str, spec: TransferSpec, split_seed: int) -> tuple[dict[str, Any], list[str]]:
    """[Kornblith]'s Caltech-101 split: 30 random images of each of the 102 folders (BACKGROUND_Google included:
    3,060 train / 6,084 test) for training, the rest for test; drawn with `split_seed`."""
    base = Path(root) / spec.folder / "101_ObjectCategories"
    classes = class_folders(base)
    gen = torch.Generator().manual_seed(int(split_seed))
    parts: dict[str, list] = {"train": [], "test": []}
    for label, cls in enumerate(classes):
        files = sorted(str(base / cls / n) for n in os.listdir(base / cls) if n.lower().endswith(IMAGE_EXTENSIONS))
        train = set(torch.randperm(len(files), generator=gen)[:30].tolist())
        for i, path in enumerate(files):
            parts["train" if i in train else "test"].append((path, label))
    return {k: ([p for p, _ in v], torch.tensor([y for _, y in v], dtype=torch.long)) for k, v in parts.items()}, \
        classes


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
                               {"train": "all", "val": None, "test": None}, lister=caltech_splits),
    "food101": TransferSpec("Food101", "food-101", ["images", "meta/train.json", "meta/test.json"],
                            "food-101.tar.gz", "top1", {"train": "train", "val": None, "test": "test"}),
    "voc2007": TransferSpec("VOCDetection", "VOCdevkit/VOC2007",
                            ["JPEGImages", "Annotations", "ImageSets/Main/train.txt", "ImageSets/Main/val.txt",
                             "ImageSets/Main/test.txt"], "VOCtrainval_06-Nov-2007.tar + VOCtest_06-Nov-2007.tar",
                            "map11", {"train": "train", "val": "val", "test": "test"}, {"year": "2007"},
                            split_arg="image_set"),
}


def voc_labels(annotation_files: list[str]) -> torch.Tensor:
    """N x 20 float, as the VOC devkit's classification ground truth (VOCevalcls): 1 where an object of the
    class is annotated and not difficult, -1 ("difficult", the devkit's 0) where all its objects are difficult,
    0 where it is absent. map11 ignores the -1 entries; training does not use them."""
    index = {c: i for i, c in enumerate(VOC_CLASSES)}
    labels = torch.zeros(len(annotation_files), len(VOC_CLASSES))
    for row, path in enumerate(annotation_files):
        for obj in ET.parse(path).getroot().iter("object"):
            col = index[obj.findtext("name").strip()]
            if (obj.findtext("difficult") or "0").strip() != "1":
                labels[row, col] = 1.0
            elif labels[row, col] == 0:  # difficult only, so far
                labels[row, col] = -1.0
    return labels


def _paths_labels(name: str, ds: Any) -> tuple[list[str], torch.Tensor, list[str]]:
    """Image paths, labels and class names from a constructed torchvision dataset (its file lists)."""
    if name == "voc2007":
        return list(ds.images), voc_labels(ds.targets), list(VOC_CLASSES)
    if name == "stanford_cars":
        return [p for p, _ in ds._samples], torch.as_tensor([y for _, y in ds._samples], dtype=torch.long), \
            list(ds.classes)
    files = ds._images if name == "oxford_iiit_pet" else ds._image_files  # torchvision's file lists
    return [str(p) for p in files], torch.as_tensor(ds._labels, dtype=torch.long), list(ds.classes)


def load_transfer(name: str, root: str, download: bool, val_fraction: float, test_fraction: float,
                  split_seed: int, load_size: int, spec: TransferSpec | None = None) -> DatasetBundle:
    """A transfer dataset by its spec (SPECS[name] by default): files checked (downloaded where allowed), the
    splits listed, a val hold-out of train where there is no official val. Test views: a centre crop of the
    whole shorter side (eval_crop 1.0), resized bicubically to the encoder's input [Kornblith]."""
    check_load_size(name, load_size)
    spec = spec or SPECS[name]
    folder = Path(root) / spec.folder
    fetch = (lambda: spec.fetch(root)) if spec.fetch else (lambda: _torchvision_fetch(spec, root))
    require_files(name, root, folder, spec.files, spec.archives, download, fetch)
    listed, class_names = spec.lister(root, spec, split_seed) if spec.lister else _torchvision_splits(name, spec, root)
    sets: dict[str, ImageSet | None] = {"train": None, "val": None, "test": None}
    for split, (paths, labels) in listed.items():
        sets[split] = ImageSet(labels=labels, paths=paths, load_size=load_size, channels=3)
    return assemble(name, train=sets["train"], val=sets["val"], test=sets["test"], num_classes=len(class_names),
                    val_fraction=val_fraction, test_fraction=test_fraction, split_seed=split_seed,
                    metric=spec.metric, class_names=class_names,
                    source={"folder": str(folder), "torchvision": spec.cls_name, "splits": spec.splits})


def _torchvision_build(spec: TransferSpec, root: str, split: str, download: bool = False) -> Any:
    import torchvision.datasets as tvd

    args = {spec.split_arg: split} if split != "all" else {}
    return getattr(tvd, spec.cls_name)(root, download=download, **args, **spec.kwargs)


def _torchvision_fetch(spec: TransferSpec, root: str) -> None:
    for split in {s for s in spec.splits.values() if s is not None}:
        _torchvision_build(spec, root, split, download=True)  # VOC2007 test comes in its own archive


def _torchvision_splits(name: str, spec: TransferSpec, root: str) -> tuple[dict[str, Any], list[str]]:
    listed, class_names = {}, []
    for ours, theirs in spec.splits.items():
        if theirs is not None:
            paths, labels, class_names = _paths_labels(name, _torchvision_build(spec, root, theirs))
            listed[ours] = (paths, labels)
    return listed, class_names


def _register(name: str) -> Callable[..., DatasetBundle]:
    def loader(root: str, download: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.2,
               split_seed: int = 0, load_size: int = 256) -> DatasetBundle:
        return load_transfer(name, root, download, val_fraction, test_fraction, split_seed, load_size)

    loader.__name__ = f"load_{name}"
    loader.__doc__ = f"{name} via torchvision's layout under root/{SPECS[name].folder}; metric {SPECS[name].metric}."
    label, order = TABLE3[name]
    return register_dataset(name, label=label, metric=SPECS[name].metric, order=order)(loader)


# The 12 transfer datasets of BYOL Table 3 in its column order (Food, C10, C100, Birds, SUN, Cars, Air, VOC, DTD,
# Pets, Caltech, Flowers): `order` is the column. CIFAR-10/100 (2, 3) are registered in datasets_torchvision,
# Birdsnap, SUN397 and Cars (4-6) in datasets_kornblith (their loaders, with Kornblith's splits).
TABLE3 = {"food101": ("Food101", 1), "fgvc_aircraft": ("Aircraft", 7), "voc2007": ("VOC2007", 8), "dtd": ("DTD", 9),
          "oxford_iiit_pet": ("Pets", 10), "caltech101": ("Caltech-101", 11), "flowers102": ("Flowers", 12)}
for _name in SPECS:
    _register(_name)
