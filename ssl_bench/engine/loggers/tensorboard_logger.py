"""TensorBoard: event files in OUT/runs/<run>/tensorboard/ through torch.utils.tensorboard (lightly's logger).

`tensorboard --logdir OUT/runs` shows every run of a suite. A resume writes into the same folder with
`purge_step` = the resume's step + 1: TensorBoard then drops what the attempt that died logged after the
checkpoint it continues from, so each step appears once (EventAccumulator's orphaned-data purge).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ssl_bench.engine.loggers.base import Logger, RunInfo, result_tag
from ssl_bench.registry import register_logger


@register_logger("tensorboard")
class TensorBoardLogger(Logger):
    """TensorBoard event files in runs/<run>/tensorboard/ (pip install "ssl-bench[tensorboard]")."""

    name = "tensorboard"
    requires = ("tensorboard",)
    extra = "tensorboard"

    def __init__(self, folder: Path, run: RunInfo, start_step: int | None):
        super().__init__(folder, run, start_step)
        from torch.utils.tensorboard import SummaryWriter

        fresh = not any(folder.glob("events.out.tfevents.*"))
        purge = start_step + 1 if start_step is not None and not fresh else None
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge, flush_secs=30)
        if fresh or start_step == 0:  # the config once per logger run (a fresh start purged the old one)
            self.writer.add_text("config", "```\n" + json.dumps(run.config, indent=1, default=str) + "\n```", 0)

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def log_results(self, rows: list[dict[str, Any]], step: int) -> None:
        for row in rows:
            if row.get("value") is not None:
                self.writer.add_scalar(result_tag(row), row["value"], step)
            else:
                self.writer.add_text(result_tag(row), f"{row.get('status')}: {row.get('error')}", step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
