"""Weights & Biases: one W&B run per ssl-bench run (solo-learn's logger), usable offline.

`WANDB_MODE=offline` writes the run under OUT/runs/<run>/wandb/ without an account or network (`wandb sync`
uploads it later); WANDB_PROJECT (default ssl-bench) and WANDB_ENTITY choose where it goes. The run is named by
the run id and grouped by the suite. Its W&B id is kept in runs/<run>/wandb/ssl-bench.json, so --resume
continues the same W&B run; W&B steps only go forward, so values at steps an attempt that died had already
logged are skipped (that file also keeps the last step logged): each step is logged once.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from ssl_bench.engine.loggers.base import Logger, RunInfo, result_tag
from ssl_bench.jsonl import write_text_atomic
from ssl_bench.registry import register_logger

STATE_FILE = "ssl-bench.json"  # {"id": W&B run id, "last_step": int, "last_keys": [...]}


def _state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


@register_logger("wandb")
class WandbLogger(Logger):
    """Weights & Biases, one W&B run per run, resumed by id (pip install "ssl-bench[wandb]"; WANDB_MODE=offline)."""

    name = "wandb"
    requires = ("wandb",)
    extra = "wandb"

    def __init__(self, folder: Path, run: RunInfo, start_step: int | None):
        super().__init__(folder, run, start_step)
        import wandb

        self.state_path = folder / STATE_FILE
        state = _state(self.state_path)
        self.id = str(state.get("id") or secrets.token_hex(4))
        self.last_step = int(state.get("last_step", -1))
        self.last_keys = set(state.get("last_keys", []))
        # dir: W&B makes its `wandb/` folder inside it, which is this logger's folder
        self.wb = wandb.init(id=self.id, resume="allow", dir=str(folder.parent), name=run.run_id, group=run.suite,
                             project=os.environ.get("WANDB_PROJECT", "ssl-bench"), config=run.config,
                             job_type="pretrain", settings=wandb.Settings(console="off", silent=True))
        self._save()

    def _save(self) -> None:
        write_text_atomic(self.state_path, json.dumps({"id": self.id, "last_step": self.last_step,
                                                       "last_keys": sorted(self.last_keys)}))

    def log(self, values: dict[str, float], step: int) -> None:
        if step < self.last_step:
            return  # logged by an attempt that died after this step
        fresh = {k: x for k, x in values.items() if step > self.last_step or k not in self.last_keys}
        if not fresh:
            return
        self.wb.log(fresh, step=step)
        self.last_keys = (self.last_keys if step == self.last_step else set()) | set(fresh)
        self.last_step = step
        self._save()

    def log_results(self, rows: list[dict[str, Any]], step: int) -> None:
        for row in rows:  # the summary: one value per result row, whatever the step
            value = row.get("value")
            self.wb.summary[result_tag(row)] = value if value is not None else f"{row.get('status')}: {row.get('error')}"

    def close(self) -> None:
        self.wb.finish()
