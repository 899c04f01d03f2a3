"""Datasets: `ssl_bench.create.create_dataset(name, root, download, **params)` is the way in; this module holds the per-process cache and the loaders' parameters.

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

from ssl_bench.registry import DATASETS
from ssl_bench.data import image_folder  # noqa: F401  (registration)
from ssl_bench.data.types import DatasetBundle

for _mod in sorted(m.name for m in pkgutil.iter_modules([os.path.dirname(__file__)])):
    if _mod.startswith("datasets_"):  # registration
        importlib.import_module(f"{__package__}.{_mod}")

ENV_ROOT = "SSL_BENCH_DATA"
_cache: dict[tuple, DatasetBundle] = {}


def default_root() -> str:
    return os.environ.get(ENV_ROOT) or os.path.join(os.path.expanduser("~"), ".cache", "ssl_bench", "data")


def dataset_params(name: str) -> dict[str, Any]:
    """The keyword parameters (with defaults) that dataset `name` accepts, besides root and download."""
    fn = DATASETS.get(name)
    params = inspect.signature(fn).parameters.values()
    return {p.name: p.default for p in params
            if p.name not in ("root", "download") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.default is not p.empty}


def load_registered(name: str, fn: Callable[..., DatasetBundle], root: str | None, download: bool,
                    params: dict[str, Any]) -> DatasetBundle:
    """The cached load behind create_dataset; `params` are already checked and complete."""
    root = os.path.abspath(os.path.expanduser(root or default_root()))
    key = (name, root, repr(sorted({**dataset_params(name), **params}.items())))
    if key not in _cache:
        _cache[key] = fn(root, download=download, **params)
    return _cache[key]


def clear_cache() -> None:
    """Forget loaded bundles (frees their memory)."""
    _cache.clear()
