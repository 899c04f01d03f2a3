"""Datasets: `ssl_bench.create.create_dataset(name, root, download, **params)` is the way in (`load_dataset`
here is the same call); this module holds the per-process cache and the loaders' parameters.

Each dataset is a function registered with `@register_dataset(name, label=..., metric=..., order=...)` and the
signature `fn(root, download=False, val_fraction=0.1, test_fraction=0.2, split_seed=0, **extra) -> DatasetBundle`;
its keyword defaults are the params a suite may set. Importing this module registers the built-ins: every
`datasets_*.py` module beside it and image_folder (a new file of datasets needs no list to be extended).
"""
from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from typing import Any, Callable

from ..registry import DATASETS
from . import image_folder  # noqa: F401  (registration)
from .types import DatasetBundle

for _mod in sorted(m.name for m in pkgutil.iter_modules([os.path.dirname(__file__)])):
    if _mod.startswith("datasets_"):  # registration
        importlib.import_module(f"{__package__}.{_mod}")

ENV_ROOT = "SSL_BENCH_DATA"
_cache: dict[tuple, DatasetBundle] = {}
# Embedded in installed packages: loading takes under a second and the run reuses the cached bundle.
CHEAP_TO_LOAD = ("digits", "mnist5k")
# Official train-split sizes: upper bounds (the val hold-out comes out of them), known without the files.
OFFICIAL_TRAIN_SIZES = {"fashion_mnist": 60000, "cifar10": 50000, "cifar100": 50000, "stl10": 5000}
# Side length of the stored images, known without the files (bundle.native_size once loaded).
OFFICIAL_IMAGE_SIZES = {"fashion_mnist": 28, "cifar10": 32, "cifar100": 32, "stl10": 96}


def default_root() -> str:
    return os.environ.get(ENV_ROOT) or os.path.join(os.path.expanduser("~"), ".cache", "ssl_bench", "data")


def dataset_params(name: str) -> dict[str, Any]:
    """The keyword parameters (with defaults) that dataset `name` accepts, besides root and download."""
    fn = DATASETS.get(name)
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params
            if p.name not in ("root", "download") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.default is not p.empty}


def load_dataset(name: str, root: str | None = None, download: bool = False, **params: Any) -> DatasetBundle:
    """Load (once per process) dataset `name` with its deterministic splits: ssl_bench.create.create_dataset.
    Unknown names and parameters raise UserError; a dataset missing offline raises DatasetUnavailableError
    saying where to put it."""
    from ..create import create_dataset

    return create_dataset(name, root, download, **params)


def load_registered(name: str, fn: Callable[..., DatasetBundle], root: str | None, download: bool,
                    params: dict[str, Any]) -> DatasetBundle:
    """The cached load behind create_dataset; `params` are already checked and complete."""
    root = os.path.abspath(os.path.expanduser(root or default_root()))
    key = (name, root, repr(sorted({**dataset_params(name), **params}.items())))
    if key not in _cache:
        _cache[key] = fn(root, download=download, **params)
    return _cache[key]


def train_split_size(name: str, root: str | None, params: dict[str, Any]) -> int | None:
    """The number of train images a run of `name` would pretrain on, or an upper bound of it, for validation.
    None where it is unknown without the data; nothing is downloaded or scanned here."""
    if params.get("train_size") is not None:
        return int(params["train_size"])  # the subset's size (its own bound is checked when the data loads)
    if name in CHEAP_TO_LOAD:
        return len(load_dataset(name, root, False, **params).train)
    if name == "stl10" and params.get("unlabeled"):
        return None  # pretraining may use the 100k unlabelled images
    return OFFICIAL_TRAIN_SIZES.get(name)


def native_image_size(name: str, root: str | None, params: dict[str, Any]) -> int | None:
    """The image size a run of `name` trains at when the suite gives none (its bundle's native_size), for
    validation; None where it is unknown without the data. Folder datasets are decoded to 224 px views (or
    load_size when smaller: bundle.py)."""
    from .bundle import FOLDER_VIEW_SIZE

    if name in CHEAP_TO_LOAD:
        return load_dataset(name, root, False, **params).native_size
    if name in OFFICIAL_IMAGE_SIZES:
        return OFFICIAL_IMAGE_SIZES[name]
    if "load_size" in dataset_params(name):
        return min(FOLDER_VIEW_SIZE, params.get("load_size") or FOLDER_VIEW_SIZE)
    return None


def clear_cache() -> None:
    """Forget loaded bundles (frees their memory)."""
    _cache.clear()
