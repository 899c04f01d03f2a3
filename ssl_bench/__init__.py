"""ssl-bench: a plugin-based benchmarking suite for self-supervised image representation learning.

The public API, importable from here (`import ssl_bench; ssl_bench.run_suite(...)`); each name is loaded on first
use, so `import ssl_bench` stays light. docs/architecture.md maps the rest of the package.

  run a suite          run_suite, load_suite, load_results, build_table, write_report
  build plugins        create_method, create_backbone, create_evaluation, create_dataset
  write plugins        register_method, register_backbone, register_evaluation, register_dataset,
                       declare_dataset, register_metric, register_logger, register_optimizer,
                       register_checkpoint_format, register_launcher, register_table_layout;
                       Method, Evaluation, EvalContext, Protocol, Metric, Logger, Section (a table), LaunchPlan;
                       Block, MLPHead (heads); Range, OneOf, ExistingFile, DIM, POSITIVE, UNIT (param checks);
                       gather_with_grad, gather_no_grad, all_reduce_mean (losses over processes); UserError
"""
from __future__ import annotations

import importlib
from typing import Any

from ssl_bench import _moved

__version__ = "0.1.0"

_API: dict[str, str] = {
    **dict.fromkeys(["run_suite", "load_suite", "load_results", "build_table", "write_report"], "ssl_bench.api"),
    **dict.fromkeys(["create_method", "create_backbone", "create_evaluation", "create_dataset"], "ssl_bench.create"),
    **dict.fromkeys(["register_method", "register_backbone", "register_evaluation", "register_dataset",
                     "declare_dataset", "register_logger"], "ssl_bench.registry"),
    "Logger": "ssl_bench.engine.loggers.base",
    **dict.fromkeys(["register_metric", "Metric"], "ssl_bench.metrics"),
    "register_optimizer": "ssl_bench.engine.optim",
    "register_checkpoint_format": "ssl_bench.weights.formats",
    **dict.fromkeys(["register_launcher", "LaunchPlan"], "ssl_bench.run.launchers"),
    **dict.fromkeys(["register_table_layout", "Section"], "ssl_bench.report.tables.layouts"),
    "Method": "ssl_bench.method",
    **dict.fromkeys(["Evaluation", "EvalContext", "Protocol"], "ssl_bench.evaluation"),
    **dict.fromkeys(["Block", "MLPHead"], "ssl_bench.heads"),
    **dict.fromkeys(["Range", "OneOf", "ExistingFile", "DIM", "POSITIVE", "UNIT"], "ssl_bench.validate"),
    **dict.fromkeys(["gather_with_grad", "gather_no_grad", "all_reduce_mean"], "ssl_bench.distributed"),
    "UserError": "ssl_bench.errors",
}
__all__ = ["__version__", *_API]

_moved.install()  # old module paths (before the sub-packages) keep importing


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'ssl_bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
