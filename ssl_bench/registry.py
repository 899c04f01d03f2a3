"""One generic registry for every plugin kind, timm-style: decorator in, `create_*` out.

Built-in plugins are imported lazily on first lookup; third-party plugins come from the
`ssl_bench.plugins` entry-point group or from a suite's `plugins:` list of module names.
"""
from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import UnknownNameError, UserError

T = TypeVar("T")

# Modules that hold the built-in plugins (installed under the ssl_bench namespace).
BUILTIN_MODULES = (
    "ssl_bench.methods",
    "ssl_bench.backbones",
    "ssl_bench.evaluations",
    "ssl_bench.data.datasets",
)
ENTRY_POINT_GROUP = "ssl_bench.plugins"
_loaded = False


class Registry(Generic[T]):
    """Maps a name to a plugin object (a class or a factory function)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None, *, override: bool = False) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__  # type: ignore[attr-defined]
            if key in self._items and self._items[key] is not obj and not override:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._items[key] = obj
            return obj

        return deco

    def get(self, name: str, where: str | None = None) -> T:
        load_plugins()
        if name not in self._items:
            raise UnknownNameError(self.kind, name, self.names(), where)
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._items

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        load_plugins()
        return iter(sorted(self._items.items()))


METHODS: Registry[Any] = Registry("method")
BACKBONES: Registry[Any] = Registry("backbone")
EVALUATIONS: Registry[Any] = Registry("evaluation")
DATASETS: Registry[Any] = Registry("dataset")

register_method = METHODS.register
register_backbone = BACKBONES.register
register_evaluation = EVALUATIONS.register
register_dataset = DATASETS.register

REGISTRIES = {"methods": METHODS, "backbones": BACKBONES, "evaluations": EVALUATIONS, "datasets": DATASETS}


def load_plugins() -> None:
    """Import built-in plugin packages and entry-point plugins once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken third-party plugin must not hide the others
            raise UserError(f"entry point '{ep.name}' ({ep.value}) in group {ENTRY_POINT_GROUP} failed to load: {exc}") from exc


def import_plugin_modules(modules: list[str], field: str = "plugins") -> None:
    """Import user plugin modules named in a suite; each import registers its plugins."""
    load_plugins()
    for i, mod in enumerate(modules):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            raise UserError(
                f"{field}[{i}]: cannot import plugin module '{mod}' ({exc}); "
                "allowed: an importable module name (on PYTHONPATH, next to the suite file, or installed)"
            ) from exc
