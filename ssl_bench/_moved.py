"""Old import paths of the core modules that moved into sub-packages (issue 29), kept working for third-party
plugins: `import ssl_bench.probe` gives the very module `ssl_bench.evalkit.probe` (one module object, so
monkeypatching either name patches both), with a DeprecationWarning. ssl-bench's own code uses the new paths
(tests/test_structure.py checks). `ssl_bench.cli` and `ssl_bench.report` are packages now (cli.main, report.html)."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

MOVED: dict[str, str] = {
    "ssl_bench.budget": "ssl_bench.config.budget",
    "ssl_bench.checkpoint_formats": "ssl_bench.weights.formats",
    "ssl_bench.cli_run": "ssl_bench.cli.run",
    "ssl_bench.cli_tables": "ssl_bench.cli.tables",
    "ssl_bench.compute_curves": "ssl_bench.report.compute_curves",
    "ssl_bench.encoder_weights": "ssl_bench.weights.load",
    "ssl_bench.engine.monitor_config": "ssl_bench.config.monitors",
    "ssl_bench.engine.monitors": "ssl_bench.evalkit.monitors",
    "ssl_bench.evaluations.finetune": "ssl_bench.evalkit.finetune",
    "ssl_bench.evidence": "ssl_bench.evalkit.evidence",
    "ssl_bench.export": "ssl_bench.weights.export",
    "ssl_bench.features": "ssl_bench.evalkit.features",
    "ssl_bench.knn": "ssl_bench.evalkit.knn",
    "ssl_bench.label_subsets": "ssl_bench.evalkit.label_subsets",
    "ssl_bench.launch": "ssl_bench.engine.process_group",
    "ssl_bench.launchers": "ssl_bench.run.launchers",
    "ssl_bench.locks": "ssl_bench.run.locks",
    "ssl_bench.outdir": "ssl_bench.run.outdir",
    "ssl_bench.plots": "ssl_bench.report.plots",
    "ssl_bench.pretrain_run": "ssl_bench.run.stages",
    "ssl_bench.probe": "ssl_bench.evalkit.probe",
    "ssl_bench.results_store": "ssl_bench.run.ledger",
    "ssl_bench.run_config": "ssl_bench.config.run_spec",
    "ssl_bench.run_record": "ssl_bench.run.recorder",
    "ssl_bench.runner": "ssl_bench.run.suite_runner",
    "ssl_bench.stats": "ssl_bench.report.stats",
    "ssl_bench.status": "ssl_bench.run.status",
    "ssl_bench.suite": "ssl_bench.config.suite",
    "ssl_bench.suite_checks": "ssl_bench.config.checks",
    "ssl_bench.suite_yaml": "ssl_bench.config.suite_yaml",
    "ssl_bench.sync_batchnorm": "ssl_bench.engine.sync_batchnorm",
    "ssl_bench.tables": "ssl_bench.report.tables",
    "ssl_bench.worker": "ssl_bench.run.worker",
}


def new_path(name: str) -> str | None:
    """The new dotted path of an old module name (or of a module inside an old package), else None."""
    for old in sorted(MOVED, key=len, reverse=True):
        if name == old or name.startswith(old + "."):
            return MOVED[old] + name[len(old):]
    return None


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name: str, path=None, target=None):  # noqa: ANN001 - the importlib protocol
        if name.startswith("ssl_bench.") and new_path(name) and new_path(name) != name:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec) -> ModuleType:  # noqa: ANN001
        new = new_path(spec.name)
        warnings.warn(f"{spec.name} moved to {new}; import it from there", DeprecationWarning, stacklevel=3)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        pass  # already executed under its new name


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
