"""Turn an evaluation's rows into result records (with the run's shared fields) and append them to the ledger."""
from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

from ssl_bench import distributed as dist
from ssl_bench.config.budget import kind_value
from ssl_bench.config.run_spec import RunSpec
from ssl_bench.config.spec import EvalSpec
from ssl_bench.errors import DISK_ERRNOS
from ssl_bench.run.ledger import ResultsStore, now, versions
from ssl_bench.run.locks import ClaimLost
from ssl_bench.evaluation import recipe_id as evaluation_recipe_id


say = dist.say  # re-exported: progress lines print once per process group
PRECISION = {"off": "fp32", "bf16": "bf16", "fp16": "fp16"}  # pretrain.amp (resolved) -> the row's precision
CRASH_FILE = "error.txt"  # RUN/error.txt: the traceback of a run that raised (removed when the run starts again)


class RunRecorder:
    """Records of one run. `extra` holds fields every later row shares (image size, split info, pretraining
    time, collapse score). A row is marked `collapsed` only when it measured the frozen encoder: rows that
    fine-tune a copy or train from scratch say so with `uses_frozen_encoder: False` (kept in `extra`)."""

    def __init__(self, spec: RunSpec, store: ResultsStore, suite_name: str,
                 guard: Callable[[], None] | None = None, device: torch.device | None = None,
                 trains: bool = True):
        self.spec, self.store, self.guard = spec, store, guard  # guard: raises once the run's claim is lost
        self.extra: dict[str, Any] = {}
        self.collapsed = False
        self.on_record: Callable[[list[dict[str, Any]]], None] | None = None  # also gets every record (loggers)
        self.base = {"suite": suite_name, "run_id": spec.run_id, "config_hash": spec.config_hash,
                     "setting_hash": spec.setting_hash, "batch_size": spec.pretrain["batch_size"],
                     "method": spec.method.label, "method_name": spec.method.name, "backbone": spec.backbone.label,
                     "pretrain_dataset": spec.dataset.label, "seed": spec.seed,
                     # a run trained to images seen or wall time: its epochs are known once trained (budget.record)
                     "epochs": None if spec.method.budget else spec.method.epochs,
                     "budget_kind": kind_value(spec.method)[0], "budget_value": kind_value(spec.method)[1],
                     "method_params": spec.method.params, "optim": spec.method.optim, "augment": spec.method.views,
                     "versions": versions(), **hardware(spec, device, trains)}

    def set_collapse_score(self, score: float, collapsed: bool) -> None:
        self.extra["collapse_score"] = score
        self.collapsed = collapsed

    def record(self, rows: list[dict[str, Any]], e: EvalSpec, key: str, wall: float) -> None:
        """All of one evaluation's rows in one append: the ledger writes them as one batch."""
        recs = [self._record(row, e, key, wall) for row in rows]
        for rec in recs:
            value = "-" if rec["value"] is None else f"{rec['value']:.2f}"
            say(f"  {self.spec.method.name:<12} {rec['protocol']:<18} {rec['eval_dataset']:<14} "
                f"{rec['metric'] or '':<15} {value:>7}  {rec['status']}")
        if dist.is_main():
            self.store.append(recs, guard=self.guard)
            if self.on_record is not None:
                self.on_record(recs)

    def fail_all(self, todo: list[tuple[EvalSpec, str]], msg: str) -> None:
        for e, key in todo:
            self.record([{"status": "failed", "error": msg}], e, key, 0.0)

    def crashed(self, exc: Exception, todo: list[tuple[EvalSpec, str]], run_dir: Path, alone: bool = False) -> None:
        """A run that raised: the traceback goes to RUN/error.txt and, in one process, its rows are recorded as
        failed with the reason (`ssl-bench status` shows it, --resume retries it) and the suite goes on. Under
        torchrun the error is raised again without rows (a rank whose peer died fails in a collective: not this
        run's fault; status reads error.txt), unless this rank runs alone (`alone`: evaluations, on rank 0).
        A full output disk and a lost claim are not caught."""
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            raise exc
        if isinstance(exc, ClaimLost):  # another worker owns the run now: nothing of it is ours to write
            raise exc
        reason = crash_reason(exc)
        grouped = dist.world_size() > 1 and not alone
        if dist.is_main():
            (run_dir / CRASH_FILE).write_text("".join(traceback.format_exception(exc)))
            then = "raised again (torchrun)" if grouped else "recorded as failed rows; going on"
            print(f"warning: {self.spec.run_id} {reason}; {then} (traceback: {run_dir / CRASH_FILE})",
                  file=sys.stderr, flush=True)
        if grouped:
            raise exc
        self.fail_all(todo, f"{reason} (traceback: runs/{self.spec.run_id}/{CRASH_FILE})")

    def _record(self, row: dict[str, Any], e: EvalSpec, key: str, wall: float) -> dict[str, Any]:
        row = dict(row)
        frozen = bool(row.pop("uses_frozen_encoder", True))
        status = row.pop("status", "ok")
        if status == "ok" and frozen and self.collapsed:
            status = "collapsed"
        rec = {**self.base, **self.extra, "protocol": row.pop("protocol", e.name),
               "eval_dataset": self._dataset_label(row.pop("eval_dataset", self.spec.dataset.name)),
               "metric": row.pop("metric", None),
               "value": row.pop("value", None), "status": status, "error": row.pop("error", None),
               "label_fraction": row.pop("label_fraction", None), "eval_key": key, "evaluation": e.name,
               "eval_params": e.params, "wall_time_s": wall, "timestamp": now(),
               **self._identity(row.pop("recipe", None))}
        rec["extra"] = row.pop("extra", {}) | row | {"uses_frozen_encoder": frozen}
        return rec

    def _dataset_label(self, name: Any) -> Any:
        """An evaluation names the pretraining dataset by its loader (image_folder): record its label."""
        return self.spec.dataset.label if name == self.spec.dataset.name else name

    def _identity(self, recipe: dict[str, Any] | None) -> dict[str, Any]:
        """The evaluation recipe (what published rows are matched on) and what the pretraining folder held."""
        manifest = (self.extra.get("split_info") or {}).get("manifest") or {}
        return {"recipe": recipe, "recipe_id": evaluation_recipe_id(recipe) if recipe else None,
                "dataset_manifest": manifest.get("id")}

def hardware(spec: RunSpec, device: torch.device | None, trains: bool = True) -> dict[str, Any]:
    """What a number depends on beyond the recipe (README: the quickstart differed by up to 10 points between
    bf16 and fp32 CPUs): the precision pretraining ran in (fp32 for an untrained row: evaluations never autocast),
    the device type and the intra-op CPU thread count."""
    amp = spec.pretrain.get("amp", "off") if trains else "off"
    return {"precision": PRECISION.get(amp, amp), "device": str(device.type if device is not None else "cpu"),
            "threads": torch.get_num_threads()}


def one_line(exc: Exception) -> str:
    """`Type: message`; a DataLoader worker's re-raised error keeps only its last line (the original message)."""
    text = str(exc)
    if "Original Traceback" in text:
        text = [line for line in text.splitlines() if line.strip()][-1]
    return f"{type(exc).__name__}: {text}"


def crash_reason(exc: BaseException | str) -> str:
    """`crashed: Type: first line of the message` (from an exception, or the last line of a traceback)."""
    text = exc if isinstance(exc, str) else one_line(exc)
    return f"crashed: {(text.strip().splitlines() or [''])[0][:300]}"
