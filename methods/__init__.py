"""Method plugins, one file each. Importing this package imports every module in it, which registers them: a new
method is one new file here (or a plugin file), with no list to extend."""
import importlib
import pkgutil

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):  # sorted: the same import order everywhere
    importlib.import_module(f"{__name__}.{_mod}")
