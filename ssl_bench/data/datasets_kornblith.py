"""Birdsnap, SUN397 and Stanford Cars, the three BYOL Table 3 transfer datasets beyond datasets_transfer.py, with
[Kornblith]'s splits (which BYOL and SimCLR used): SUN397's first official partition (Training_01 / Testing_01,
50 + 50 images per class), Cars' official train / test, Birdsnap's published test list. All report top-1. As
for the other transfer sets, val is a stratified hold-out of train and test views take the whole shorter side.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch

from ssl_bench.errors import DatasetUnavailableError
from ssl_bench.registry import register_dataset
from ssl_bench.data.datasets_transfer import TransferSpec, load_transfer
from ssl_bench.data.image_folder import IMAGE_EXTENSIONS, class_folders
from ssl_bench.data.types import DatasetBundle

# SUN397: torchvision fetches the images; the partitions are a separate file of the SUN database's page.
SUN397_PARTITIONS_URL = "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip"


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def sun397_splits(root: str, spec: TransferSpec, split_seed: int) -> tuple[dict[str, Any], list[str]]:
    """Partitions/Training_01.txt and Testing_01.txt ('/a/abbey/sun_xxx.jpg' lines) under root/SUN397;
    classes in ClassName.txt order ('/a/abbey')."""
    base = Path(root) / spec.folder
    classes = _read_lines(base / "ClassName.txt")
    index = {c: i for i, c in enumerate(classes)}
    listed = {}
    for ours, theirs in (("train", "Training_01"), ("test", "Testing_01")):
        lines = _read_lines(base / "Partitions" / f"{theirs}.txt")
        labels = [index[line.rsplit("/", 1)[0]] for line in lines]
        listed[ours] = ([str(base / line.lstrip("/")) for line in lines], torch.tensor(labels, dtype=torch.long))
    return listed, [c.lstrip("/") for c in classes]


def _fetch_sun397(root: str) -> None:
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import download_and_extract_archive

    tvd.SUN397(root, download=True)
    download_and_extract_archive(SUN397_PARTITIONS_URL, download_root=str(Path(root) / "SUN397"))


def birdsnap_splits(root: str, spec: TransferSpec, split_seed: int) -> tuple[dict[str, Any], list[str]]:
    """images/<species>/<file> as fetched by Birdsnap's own script; test = the images test_images.txt lists
    (its published split; a header line 'path' is skipped), train = every other image. Listed images the
    script could not fetch (dead URLs) are simply absent, as in [Kornblith]'s 47,386 / 2,443 images."""
    base = Path(root) / spec.folder
    classes = class_folders(base / "images")
    test_names = {line for line in _read_lines(base / "test_images.txt") if line != "path"}
    listed: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "test": ([], [])}
    for label, cls in enumerate(classes):
        for name in sorted(os.listdir(base / "images" / cls)):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                paths, labels = listed["test" if f"{cls}/{name}" in test_names else "train"]
                paths.append(str(base / "images" / cls / name))
                labels.append(label)
    return {k: (p, torch.tensor(y, dtype=torch.long)) for k, (p, y) in listed.items()}, classes


def _no_birdsnap_download(root: str) -> None:
    raise DatasetUnavailableError("Birdsnap is not downloadable here: fetch its images with the get_birdsnap.py "
                                  "script of the Birdsnap archive (birdsnap.tgz, from birdsnap.com)")


SPECS = {
    "sun397": TransferSpec("SUN397", "SUN397", ["ClassName.txt", "Partitions/Training_01.txt",
                                                "Partitions/Testing_01.txt"],
                           "SUN397.tar.gz + Partitions.zip", "top1", {"train": "Training_01", "val": None,
                                                                     "test": "Testing_01"},
                           lister=sun397_splits, fetch=_fetch_sun397),
    "stanford_cars": TransferSpec("StanfordCars", "stanford_cars",
                                  ["devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_train",
                                   "cars_test", "cars_test_annos_withlabels.mat"],
                                  "car_devkit.tgz + cars_train.tgz + cars_test.tgz + cars_test_annos_withlabels.mat "
                                  "(torchvision's layout; the original site is gone)", "top1",
                                  {"train": "train", "val": None, "test": "test"}),
    "birdsnap": TransferSpec("", "birdsnap", ["images", "test_images.txt"],
                             "birdsnap.tgz, with images fetched by its get_birdsnap.py", "top1",
                             {"train": "all but test_images.txt", "val": None, "test": "test_images.txt"},
                             lister=birdsnap_splits, fetch=_no_birdsnap_download),
}


def _register(name: str) -> Callable[..., DatasetBundle]:
    def loader(root: str, download: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.2,
               split_seed: int = 0, load_size: int = 256) -> DatasetBundle:
        return load_transfer(name, root, download, val_fraction, test_fraction, split_seed, load_size, SPECS[name])

    loader.__name__ = f"load_{name}"
    loader.__doc__ = f"{name} under root/{SPECS[name].folder} ([Kornblith]'s split); metric top1."
    label, order = DISPLAY[name]
    return register_dataset(name, label=label, order=order)(loader)


DISPLAY = {"birdsnap": ("Birdsnap", 4), "sun397": ("SUN397", 5), "stanford_cars": ("Cars", 6)}  # BYOL Table 3 columns
for _name in SPECS:
    _register(_name)
