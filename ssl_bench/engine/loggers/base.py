"""The logger contract and RunLoggers, the fan-out a run logs through.

A logger is one experiment tracker's view of one run (solo-learn logs to W&B, lightly to TensorBoard). It is
opened when its run first logs, in its own folder OUT/runs/<run>/<name>/, with `start_step`: the step training
continues from (0 for a fresh run, a resume's checkpoint step, None when this attempt does not train). What an
earlier attempt that died logged after that step is dropped or skipped, so that no step is logged twice and
a resume continues the same logger run. Loggers run on rank 0 only. A logger that raises is reported in one
warning line and switched off for the rest of the run: a tracker never costs a training run.
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ssl_bench import validate as v
from ssl_bench.errors import UserError
from ssl_bench.jsonl import own_folder
from ssl_bench.registry import LOGGERS


@dataclass
class RunInfo:
    run_id: str
    suite: str
    config: dict[str, Any]  # the run's resolved config (run.json's "config")


class Logger:
    """Base class of a logger plugin: set `name`, the modules it `requires` and the pip `extra` that installs
    them, and implement log / log_results (and close)."""

    name: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()  # importable modules it needs; validate checks them
    extra: ClassVar[str] = ""  # pip install "ssl-bench[EXTRA]" installs them

    def __init__(self, folder: Path, run: RunInfo, start_step: int | None):
        self.folder, self.run, self.start_step = folder, run, start_step

    def log(self, values: dict[str, float], step: int) -> None:
        """Scalars at a training step: train/loss, train/lr, train/tau, train/images_per_s every log_every steps;
        epoch/* and monitor/* (the kNN monitor, the online head) at the end of each epoch."""
        raise NotImplementedError

    def log_results(self, rows: list[dict[str, Any]], step: int) -> None:
        """Result records (as OUT/results.jsonl holds them), at the run's last training step."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def result_tag(row: dict[str, Any]) -> str:
    """results/<protocol>/<eval dataset>/<metric>, with /frac<label fraction> for semi-supervised rows."""
    frac = row.get("label_fraction")
    return (f"results/{row.get('protocol')}/{row.get('eval_dataset')}/{row.get('metric') or row.get('status')}"
            + (f"/frac{frac:g}" if frac is not None else ""))


def check_loggers(value: Any, field: str = "output.loggers") -> list[str]:
    """output.loggers: distinct registered names whose packages are installed (checked before anything runs)."""
    names = [v.as_str(n, f"{field}[{i}]", LOGGERS.names()) for i, n in enumerate(v.as_list(value, field))]
    if len(set(names)) != len(names):
        raise v.fail(field, names, "distinct logger names")
    for i, name in enumerate(names):
        cls = LOGGERS.get(name)
        missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if missing:
            raise UserError(f"{field}[{i}]: logger '{name}' needs the Python package '{missing[0]}', which is not "
                            f"installed; allowed: pip install \"ssl-bench[{cls.extra}]\", or leave '{name}' out")
    return names


class RunLoggers:
    """The suite's loggers for one run; nothing is opened (no file, no W&B run) before the first value."""

    def __init__(self, names: list[str], run_dir: Path, run_id: str, suite: str, config: dict[str, Any],
                 enabled: bool = True):
        self.names = list(names) if enabled else []
        self.run_dir, self.info = Path(run_dir), RunInfo(run_id, suite, config)
        self.loggers: list[Logger] | None = None
        self.last_step = 0

    def __bool__(self) -> bool:
        return bool(self.names)

    def begin(self, start_step: int) -> None:
        """Training starts (or continues) at `start_step`: open the loggers now, knowing where it resumes."""
        self._open(start_step)

    def _open(self, start_step: int | None) -> list[Logger]:
        if self.loggers is None:
            self.loggers = []
            for name in self.names:
                self._call(name, lambda: self.loggers.append(  # type: ignore[union-attr]
                    LOGGERS.get(name)(own_folder(self.run_dir / name), self.info, start_step)))
        return self.loggers

    def log(self, values: dict[str, float], step: int) -> None:
        if not self.names:
            return
        self.last_step = max(self.last_step, step)
        for lg in list(self._open(None)):
            self._call(lg.name, lambda: lg.log(values, step), lg)

    def log_results(self, rows: list[dict[str, Any]]) -> None:
        if not self.names or not rows:
            return
        step = max(self.last_step, int(rows[0].get("compute_steps") or 0))  # a loaded run: its trained steps
        for lg in list(self._open(None)):
            self._call(lg.name, lambda: lg.log_results(rows, step), lg)

    def _call(self, name: str, fn: Any, lg: Logger | None = None) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a tracker's failure must not fail the run
            print(f"warning: logger '{name}' failed for {self.info.run_id} ({type(exc).__name__}: "
                  f"{str(exc).splitlines()[0] if str(exc) else ''}); it is off for the rest of this run",
                  file=sys.stderr, flush=True)
            if lg is not None and self.loggers is not None and lg in self.loggers:
                self.loggers.remove(lg)
                self._call(name + " (close)", lg.close)

    def close(self) -> None:
        for lg in self.loggers or []:
            self._call(lg.name, lg.close)
        self.loggers = None
