"""CIFAR-10/100 and STL-10, in memory as uint8, from torchvision's on-disk layout (downloaded only on request)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ssl_bench.errors import DatasetUnavailableError
from ssl_bench.registry import register_dataset
from ssl_bench.data.bundle import assemble, pretrain_on_val_holdout, uint8_images
from ssl_bench.data.types import DatasetBundle, ImageSet


def require_files(name: str, root: str, folder: Path, files: list[str], archives: str, download: bool,
                  fetch: Callable[[], object]) -> None:
    """Make sure `files` exist in `folder`: download through torchvision if allowed, else say exactly what
    to place where."""
    def missing() -> list[str]:
        return [f for f in files if not (folder / f).exists()]

    if missing() and download:
        try:
            fetch()
        except Exception as exc:  # network and archive errors come in many types
            raise DatasetUnavailableError(f"{name}: download into {root} failed ({exc}); place the files "
                                          f"by hand in {folder} ({', '.join(files)}, from {archives})") from None
    gone = missing()
    if gone:
        state = "not found" if len(gone) == len(files) else f"incomplete (missing {', '.join(gone)})"
        raise DatasetUnavailableError(
            f"{name}: {state} in {folder}; place torchvision's files there ({', '.join(files)}, extracted "
            f"from {archives}) or set download: true")


def _cifar(name: str, cls_name: str, folder: str, files: list[str], archive: str, num_classes: int, root: str,
           download: bool, val_fraction: float, test_fraction: float, split_seed: int,
           train_size: int | None, pretrain_on_val: bool = False) -> DatasetBundle:
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    require_files(name, root, Path(root) / folder, files, archive, download,
                  lambda: cls(root, train=True, download=True))
    sets = {}
    for part in ("train", "test"):
        ds = cls(root, train=part == "train", download=False)  # .data: N x 32 x 32 x 3 uint8
        sets[part] = ImageSet(labels=torch.as_tensor(ds.targets, dtype=torch.long),
                              images=uint8_images(ds.data, channels_last=True))
    bundle = assemble(name, train=sets["train"], test=sets["test"], num_classes=num_classes,
                      val_fraction=val_fraction, test_fraction=test_fraction, split_seed=split_seed,
                      class_names=list(ds.classes), source=str(Path(root) / folder), train_size=train_size)
    return pretrain_on_val_holdout(bundle, pretrain_on_val, name)  # solo-learn, lightly: all 50k pretrain


@register_dataset("cifar10", label="CIFAR-10", order=2, train_size=50000, image_size=32)  # order: BYOL Table 3 column (datasets_transfer)
def load_cifar10(root: str, download: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.2,
                 split_seed: int = 0, train_size: int | None = None, pretrain_on_val: bool = False) -> DatasetBundle:
    """CIFAR-10 (50k train / 10k test, 32 px, 10 classes) from torchvision's python batches under root."""
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    return _cifar("cifar10", "CIFAR10", "cifar-10-batches-py", files, "cifar-10-python.tar.gz", 10, root,
                  download, val_fraction, test_fraction, split_seed, train_size, pretrain_on_val)


@register_dataset("cifar100", label="CIFAR-100", order=3, train_size=50000, image_size=32)
def load_cifar100(root: str, download: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.2,
                  split_seed: int = 0, train_size: int | None = None, pretrain_on_val: bool = False) -> DatasetBundle:
    """CIFAR-100 (50k train / 10k test, 32 px, 100 fine classes) from torchvision's python files under root."""
    return _cifar("cifar100", "CIFAR100", "cifar-100-python", ["train", "test", "meta"], "cifar-100-python.tar.gz",
                  100, root, download, val_fraction, test_fraction, split_seed, train_size, pretrain_on_val)


def _stl_images(path: Path) -> torch.Tensor:
    # STL-10 binaries store each 96x96 plane column-major: swap H and W (a view, no copy of the 2.7 GB set)
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3, 96, 96)
    return torch.from_numpy(raw).transpose(2, 3)


def _stl_labels(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1)  # stored 1..10


@register_dataset("stl10", label="STL-10", train_size=5000, image_size=96)
def load_stl10(root: str, download: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.2,
               split_seed: int = 0, unlabeled: bool = False) -> DatasetBundle:
    """STL-10 labelled train (5k) / test (8k) at 96 px. With unlabeled=True the 100k unlabelled images are
    attached as `bundle.unlabeled` (an ImageSet with labels -1) for pretraining; train/val/test are unchanged."""
    import torchvision.datasets as tvd

    folder = Path(root) / "stl10_binary"
    files = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt"]
    files += ["unlabeled_X.bin"] if unlabeled else []
    require_files("stl10", root, folder, files, "stl10_binary.tar.gz", download,
                  lambda: tvd.STL10(root, split="test", download=True))
    sets = {part: ImageSet(labels=_stl_labels(folder / f"{part}_y.bin"), images=_stl_images(folder / f"{part}_X.bin"))
            for part in ("train", "test")}
    names = (folder / "class_names.txt").read_text().split()
    bundle = assemble("stl10", train=sets["train"], test=sets["test"], num_classes=10, val_fraction=val_fraction,
                      test_fraction=test_fraction, split_seed=split_seed, class_names=names, source=str(folder))
    bundle.unlabeled = None  # type: ignore[attr-defined]
    if unlabeled:
        images = _stl_images(folder / "unlabeled_X.bin")
        bundle.unlabeled = ImageSet(labels=torch.full((len(images),), -1, dtype=torch.long), images=images)
        bundle.split_info["unlabeled"] = {"size": len(images), "file": str(folder / "unlabeled_X.bin")}
    return bundle
