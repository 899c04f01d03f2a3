"""CSV: plain files in OUT/runs/<run>/csv/, for tools without a tracker (no extra package).

steps.csv holds every logged value as `step,key,value` (long format: the keys differ between steps and
epochs; `pandas.read_csv(...).pivot(index="step", columns="key", values="value")` gives the wide table);
results.csv one line per result row. A resume drops the lines of steps after the checkpoint it continues
from, so each (step, key) appears once.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ssl_bench.engine.loggers.base import Logger, RunInfo
from ssl_bench.jsonl import append_text
from ssl_bench.jsonl import write_text_atomic
from ssl_bench.registry import register_logger

STEP_FIELDS = ("step", "key", "value")
RESULT_FIELDS = ("step", "run_id", "protocol", "eval_dataset", "metric", "label_fraction", "value", "status",
                 "error")


def _line(values: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


@register_logger("csv")
class CsvLogger(Logger):
    """steps.csv (step, key, value) and results.csv in runs/<run>/csv/; no extra package."""

    name = "csv"

    def __init__(self, folder: Path, run: RunInfo, start_step: int | None):
        super().__init__(folder, run, start_step)
        self.steps, self.results = folder / "steps.csv", folder / "results.csv"
        if start_step is not None and self.steps.is_file():
            rows = list(csv.reader(self.steps.read_text(encoding="utf-8").splitlines()))[1:]
            kept = [r for r in rows if len(r) == 3 and r[0].isdigit() and int(r[0]) <= start_step]
            write_text_atomic(self.steps, "".join(_line(r) for r in [list(STEP_FIELDS), *kept]))
        for path, fields in ((self.steps, STEP_FIELDS), (self.results, RESULT_FIELDS)):
            if not path.is_file():
                append_text(path, _line(list(fields)))

    def log(self, values: dict[str, float], step: int) -> None:
        append_text(self.steps, "".join(_line([step, key, f"{value:.8g}"]) for key, value in values.items()))

    def log_results(self, rows: list[dict[str, Any]], step: int) -> None:
        append_text(self.results, "".join(_line([step if f == "step" else r.get(f) for f in RESULT_FIELDS])
                                          for r in rows))
