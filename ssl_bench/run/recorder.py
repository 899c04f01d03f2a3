"""Turn an evaluation's rows into result records (with the run's shared fields) and append them to the ledger."""
from __future__ import annotations

from typing import Any, Callable

from ssl_bench import distributed as dist
from ssl_bench.config.budget import kind_value
from ssl_bench.run.ledger import ResultsStore, now, versions
from ssl_bench.config.run_spec import RunSpec
from ssl_bench.config.spec import EvalSpec


say = dist.say  # re-exported: progress lines print once per process group


class RunRecorder:
    """Records of one run. `extra` holds fields every later row shares (image size, split info, pretraining
    time, collapse score). A row is marked `collapsed` only when it measured the frozen encoder: rows that
    fine-tune a copy or train from scratch say so with `uses_frozen_encoder: False` (kept in `extra`)."""

    def __init__(self, spec: RunSpec, store: ResultsStore, suite_name: str,
                 guard: Callable[[], None] | None = None):
        self.spec, self.store, self.guard = spec, store, guard  # guard: raises once the run's claim is lost
        self.extra: dict[str, Any] = {}
        self.collapsed = False
        self.base = {"suite": suite_name, "run_id": spec.run_id, "config_hash": spec.config_hash,
                     "setting_hash": spec.setting_hash, "batch_size": spec.pretrain["batch_size"],
                     "method": spec.method.label, "method_name": spec.method.name, "backbone": spec.backbone.label,
                     "pretrain_dataset": spec.dataset.name, "seed": spec.seed,
                     # a run trained to images seen or wall time: its epochs are known once trained (budget.record)
                     "epochs": None if spec.method.budget else spec.method.epochs,
                     "budget_kind": kind_value(spec.method)[0], "budget_value": kind_value(spec.method)[1],
                     "method_params": spec.method.params, "optim": spec.method.optim, "augment": spec.method.views,
                     "versions": versions()}

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

    def fail_all(self, todo: list[tuple[EvalSpec, str]], msg: str) -> None:
        for e, key in todo:
            self.record([{"status": "failed", "error": msg}], e, key, 0.0)

    def _record(self, row: dict[str, Any], e: EvalSpec, key: str, wall: float) -> dict[str, Any]:
        row = dict(row)
        frozen = bool(row.pop("uses_frozen_encoder", True))
        status = row.pop("status", "ok")
        if status == "ok" and frozen and self.collapsed:
            status = "collapsed"
        rec = {**self.base, **self.extra, "protocol": row.pop("protocol", e.name),
               "eval_dataset": row.pop("eval_dataset", self.spec.dataset.name), "metric": row.pop("metric", None),
               "value": row.pop("value", None), "status": status, "error": row.pop("error", None),
               "label_fraction": row.pop("label_fraction", None), "eval_key": key, "evaluation": e.name,
               "eval_params": e.params, "wall_time_s": wall, "timestamp": now()}
        rec["extra"] = row.pop("extra", {}) | row | {"uses_frozen_encoder": frozen}
        return rec
