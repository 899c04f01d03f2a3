"""Experiment loggers (output.loggers), one file each: importing this package imports every module in it,
which registers them (@register_logger); a new tracker is one new file here or in a suite's plugins.
RunLoggers (base.py) is what a run uses: it fans the run's values out to the suite's loggers."""
import importlib
import pkgutil

from ssl_bench.engine.loggers.base import Logger, RunLoggers, check_loggers

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):  # sorted: the same import order everywhere
    importlib.import_module(f"{__name__}.{_mod}")

__all__ = ["Logger", "RunLoggers", "check_loggers"]
