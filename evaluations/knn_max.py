"""kNN accuracy at its maximum over the monitored epochs: lightly's benchmark convention [lightly].

The engine's kNN monitor (`pretrain.knn_monitor`, ssl_bench.evalkit.monitors) writes `knn_top1` into the
metrics rows of the monitored epochs; this protocol reads that curve back from the run folder's metrics log
and reports its maximum, with the epoch it came from and the whole curve. It is NOT the headline kNN number:
the `knn` protocol reports the final epoch (protocols.md, "Pitfalls": max-over-epochs picks an epoch on the
data it is measured on). Here the curve is measured on a fixed subset of the val split, never on test.

An untrained baseline (random, epochs 0) has a one-point curve: the monitor's kNN of the encoder as it is,
at 0 epochs. A suite listing knn_max without pretrain.knn_monitor is refused at validate.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ssl_bench.evaluation import EvalContext, Evaluation, Protocol
from ssl_bench.evalkit.monitors import KnnMonitor, knn_curve
from ssl_bench.evalkit.recipes import KNN_MAX_FIELDS
from ssl_bench.registry import register_evaluation


@register_evaluation("knn_max")
class KnnMaxEvaluation(Evaluation):
    """The maximum of the kNN monitor's curve (top-1 %, on the pretraining dataset's fixed val subset)."""

    name = "knn_max"
    defaults: dict[str, Any] = {}
    protocols = (Protocol("knn_max", "kNN (max over epochs)", 15, ("top1",), table="knn",
                          recipe_fields=KNN_MAX_FIELDS),)
    requires_pretrain = ("knn_monitor",)  # checked at validate (ssl_bench.config.checks.check_pretrain_needs)

    def recipe(self, run: dict[str, Any]) -> dict[str, Any] | None:
        """The monitor's: its k, T and interval, the train split as bank, a fixed `val_size` subset of val
        classified (never test, unlike lightly's curve), the maximum over the monitored epochs."""
        m = run.get("knn_monitor")
        if not m:
            return None
        return {"k": m["k"], "temperature": float(m["temperature"]), "every": m["every"],
                "bank": "train" if m.get("bank_size") is None else m["bank_size"], "split": "val",
                "n_eval": m["val_size"], "epoch": "max"}

    def evaluate(self, ctx: EvalContext) -> list[dict[str, Any]]:
        run_dir = Path(ctx.out_dir)
        config = json.loads((run_dir / "run.json").read_text())["config"]
        monitor = config.get("knn_monitor")
        if not monitor:
            raise RuntimeError("this run was trained without pretrain.knn_monitor; set it to get a kNN curve")
        curve = knn_curve(run_dir)
        if not curve and config.get("epochs", 0) == 0:  # untrained: the encoder as it is, after 0 epochs
            curve = [(0, KnnMonitor(monitor, ctx.encoder, ctx.pretrain, ctx.image_size, ctx.device, 0).measure())]
        if not curve:
            raise RuntimeError(f"no knn_top1 rows in the metrics log of {run_dir.name}")
        best_epoch, best = max(curve, key=lambda p: p[1])  # the first epoch reaching the maximum
        extra = {"best_epoch": best_epoch, "final_epoch": curve[-1][0], "final_value": curve[-1][1],
                 "curve": [[e, top1] for e, top1 in curve], "split": "val", "n_val": monitor["val_size"],
                 "k": monitor["k"], "temperature": monitor["temperature"], "every": monitor["every"]}
        # The maximum may come from an earlier encoder than the frozen final one: a collapsed final encoder
        # does not mark this row collapsed.
        return [{"protocol": "knn_max", "eval_dataset": ctx.pretrain.name, "metric": "top1", "value": best,
                 "extra": extra, "uses_frozen_encoder": False}]
