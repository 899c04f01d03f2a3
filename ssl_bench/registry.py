"""One generic registry for every plugin kind, timm-style: decorator in, `create_*` out (ssl_bench.create:
create_method / create_backbone / create_evaluation / create_dataset look up, check params and build).

Built-in plugins are imported lazily on first lookup; third-party plugins come from the
`ssl_bench.plugins` entry-point group or from a suite's `plugins:` list (module names, or .py files beside
the suite, which are imported by path: the suite's folder never goes on sys.path).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Generic, Iterator, TypeVar

from ssl_bench.errors import UnknownNameError, UserError

T = TypeVar("T")

# Modules that hold the built-in plugins (installed under the ssl_bench namespace).
BUILTIN_MODULES = (
    "ssl_bench.methods",
    "ssl_bench.backbones",
    "ssl_bench.evaluations",
    "ssl_bench.data.datasets",
    "ssl_bench.engine.loggers",
)
ENTRY_POINT_GROUP = "ssl_bench.plugins"
PLUGIN_FILE_PREFIX = "ssl_bench_plugin_file_"  # module names of plugin files imported by path
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_state = "no"  # no | loading | done
broken_entry_points: dict[str, str] = {}  # entry point name -> its import error, for hints


def _same_plugin_file(old: Any, new: Any) -> bool:
    """Two loads of a plugin file with the same stem (e.g. barlow_twins.py from two suite folders in one
    process): the later one replaces the earlier instead of clashing."""
    a, b = getattr(old, "__module__", ""), getattr(new, "__module__", "")
    return a.startswith(PLUGIN_FILE_PREFIX) and b.startswith(PLUGIN_FILE_PREFIX) and \
        a.rsplit("_", 1)[0] == b.rsplit("_", 1)[0]


class Registry(Generic[T]):
    """Maps a name to a plugin object (a class or a factory function)."""

    def __init__(self, kind: str, home: str | None = None):
        self.kind = kind
        self.home = home  # the module that registers the built-in members, imported on first lookup
        self._items: dict[str, T] = {}

    def _load(self) -> None:
        load_plugins()
        if self.home is not None and self.home not in sys.modules:
            importlib.import_module(self.home)

    def register(self, name: str | None = None, *, override: bool = False) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__  # type: ignore[attr-defined]
            old = self._items.get(key)
            if old is not None and old is not obj and not override and not _same_plugin_file(old, obj):
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._items[key] = obj
            return obj

        return deco

    def get(self, name: str, where: str | None = None) -> T:
        self._load()
        if name not in self._items:
            broken = ", ".join(sorted(broken_entry_points))
            note = f" (entry points that failed to load: {broken})" if broken else ""
            raise UnknownNameError(self.kind, name, self.names(), where, note)
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(sorted(self._items.items()))


@dataclass(frozen=True)
class DatasetInfo:
    """What tables, plots and published rows need to know about a dataset, declared where it is registered.
    A field left None is unset: `display`, `headline` fall back to the name and top-1, `order` to appearance."""

    name: str
    label: str | None = None  # display name, e.g. "Aircraft"
    metric: str | None = None  # headline metric: mean_per_class (Aircraft, Pets, ...), map11 (VOC2007), else top1
    order: float | None = None  # place along a table axis (BYOL Table 3's column order); None: after those set
    train_size: int | None = None  # official train-split size, an upper bound known without the files
    embedded: bool | None = None  # ships inside an installed package: loading it to count is cheap
    image_size: int | None = None  # side of the stored images, known without the files (bundle.native_size)

    @property
    def display(self) -> str:
        return self.label or self.name

    @property
    def headline(self) -> str:
        return self.metric or "top1"

    def updated(self, other: "DatasetInfo") -> "DatasetInfo":
        """This info with the fields `other` sets."""
        return replace(self, **{f: getattr(other, f) for f in ("label", "metric", "order", "train_size", "embedded", "image_size")
                                if getattr(other, f) is not None})


METHODS: Registry[Any] = Registry("method")
BACKBONES: Registry[Any] = Registry("backbone")
EVALUATIONS: Registry[Any] = Registry("evaluation")
DATASETS: Registry[Any] = Registry("dataset")  # loaders
DATASET_INFO: Registry[DatasetInfo] = Registry("dataset")  # every dataset tables may name, with or without a loader
LOGGERS: Registry[Any] = Registry("logger")  # experiment trackers for output.loggers (engine/loggers/)
# The closed sets the core chooses from, open to plugins: each registry's built-ins live in its `home` module,
# which also holds its register_* decorator (docs/architecture.md, "Extension points").
METRICS: Registry[Any] = Registry("metric", home="ssl_bench.metrics")  # Metric: label, order, compute
OPTIMIZERS: Registry[Any] = Registry("optimizer", home="ssl_bench.engine.optim")  # fn(groups, lr, recipe)
CHECKPOINT_FORMATS: Registry[Any] = Registry("checkpoint format", home="ssl_bench.weights.formats")
LAUNCHERS: Registry[Any] = Registry("launcher", home="ssl_bench.run.launchers")  # Launcher: start(plan)
TABLE_LAYOUTS: Registry[Any] = Registry("table layout", home="ssl_bench.report.tables.layouts")  # fn(df)

register_method = METHODS.register
register_backbone = BACKBONES.register
register_evaluation = EVALUATIONS.register
register_logger = LOGGERS.register


def register_dataset(name: str | None = None, *, label: str | None = None, metric: str | None = None,
                     order: float | None = None, train_size: int | None = None, embedded: bool | None = None,
                     image_size: int | None = None, override: bool = False) -> Callable[[T], T]:
    """Register a dataset loader and declare, in the same line, its display label, headline metric, table
    order, train-split and image size (see DatasetInfo). Fields left out keep what `declare_dataset` said, if anything."""

    def deco(fn: T) -> T:
        key = name or getattr(fn, "name", None) or fn.__name__  # type: ignore[attr-defined]
        DATASETS.register(key, override=override)(fn)
        _declare(DatasetInfo(key, label, metric, order, train_size, embedded, image_size), wins=True)
        return fn

    return deco


def declare_dataset(name: str, *, label: str | None = None, metric: str | None = None,
                    order: float | None = None) -> None:
    """Declare a dataset that published rows name but that has no loader here (ImageNet, Birdsnap, ...), so tables
    label and order it; a loader registered under the name keeps these fields unless it sets its own."""
    _declare(DatasetInfo(name, label, metric, order), wins=False)


def _declare(info: DatasetInfo, wins: bool) -> None:
    old = DATASET_INFO._items.get(info.name)  # no lookup: this runs while the built-ins are being imported
    if old is not None:
        info = old.updated(info) if wins else info.updated(old)
    DATASET_INFO._items[info.name] = info

REGISTRIES = {"methods": METHODS, "backbones": BACKBONES, "evaluations": EVALUATIONS, "datasets": DATASETS,
              "loggers": LOGGERS, "metrics": METRICS, "optimizers": OPTIMIZERS,
              "checkpoint_formats": CHECKPOINT_FORMATS, "launchers": LAUNCHERS, "table_layouts": TABLE_LAYOUTS}


def load_plugins() -> None:
    """Import the built-in plugin packages, then every entry-point plugin, once per process.

    A broken entry point is reported as one warning line and skipped: it must not hide the built-ins, the
    other entry points, or abort a suite that does not use it.
    """
    global _state
    if _state != "no":  # "loading": a plugin looked something up while being imported
        return
    _state = "loading"
    try:
        for mod in BUILTIN_MODULES:
            importlib.import_module(mod)
    except BaseException:
        _state = "no"  # a broken install: fail loudly now and again on the next lookup
        raise
    try:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            _load_entry_point(ep)
    finally:
        _state = "done"


def _load_entry_point(ep: Any) -> None:
    try:
        ep.load()
    except Exception as exc:  # third-party code: any error at all
        what = _one_line(exc)
        broken_entry_points[ep.name] = what
        print(f"warning: entry point '{ep.name}' ({ep.value}) in group {ENTRY_POINT_GROUP} failed to load and "
              f"is skipped: {what}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


def plugin_file(entry: str, suite_dir: Path, field: str) -> Path | None:
    """The file a `plugins:` entry names: 'x.py' (relative to the suite's folder) or a bare 'x' when
    <suite_dir>/x.py exists; None for a module name to import from installed packages / PYTHONPATH."""
    if entry.endswith(".py"):
        path = Path(entry) if Path(entry).is_absolute() else suite_dir / entry
        if not path.is_file():
            raise UserError(f"{field}: plugin file {str(path)!r} not found; allowed: a .py file (relative to the "
                            "suite's folder) or an importable module name")
        return path
    if not MODULE_NAME.fullmatch(entry):
        raise UserError(f"{field}: bad value {entry!r}; allowed: a module name (a.b.c) or a .py file beside the suite")
    beside = suite_dir / f"{entry}.py"
    return beside if "." not in entry and beside.is_file() else None


def import_plugin_file(path: str | os.PathLike, field: str = "plugins") -> ModuleType:
    """Import one plugin file by its path, under a module name of its own. The file's folder never goes on
    sys.path, so nothing beside it (a stray sklearn.py) can shadow an installed package."""
    path = Path(path).resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"{PLUGIN_FILE_PREFIX}{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
    if name in sys.modules:  # the same file, already loaded in this process
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{field}: cannot load plugin file {str(path)!r}; allowed: a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # registered first: dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UserError(f"{field}: plugin file {str(path)!r} failed to import: {_one_line(exc)}") from exc
    return module


def _import_module(mod: str, field: str) -> None:
    try:
        importlib.import_module(mod)
    except ModuleNotFoundError as exc:
        if exc.name is not None and mod != exc.name and not mod.startswith(exc.name + "."):
            raise UserError(f"{field}: plugin module '{mod}' failed to import: {_one_line(exc)}") from exc
        raise UserError(f"{field}: cannot import plugin module '{mod}' ({exc}); allowed: an installed or "
                        "PYTHONPATH module name, or a .py file beside the suite") from exc
    except Exception as exc:
        raise UserError(f"{field}: plugin module '{mod}' failed to import: {_one_line(exc)}") from exc


def import_plugins(entries: list[str], suite_dir: str | os.PathLike, field: str = "plugins") -> None:
    """Import a suite's `plugins:`: files beside the suite by path, other names as installed modules.
    Each import registers its plugins."""
    load_plugins()
    for i, entry in enumerate(entries):
        path = plugin_file(entry, Path(suite_dir), f"{field}[{i}]")
        if path is not None:
            import_plugin_file(path, f"{field}[{i}]")
        else:
            _import_module(entry, f"{field}[{i}]")
