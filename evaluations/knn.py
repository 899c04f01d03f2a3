"""Weighted k-nearest-neighbour classifier on frozen features (InstDisc, Wu et al. 2018).

Features are l2-normalized; each test point takes its k most cosine-similar training points
(the memory bank) and every neighbour votes for its class with weight exp(similarity / T).
Defaults k=200, T=0.07 follow InstDisc (lightly uses T=0.1, solo-learn k=20).
"""
from __future__ import annotations

import math
from typing import Any

from ssl_bench.errors import UserError
from ssl_bench.evaluation import EvalContext, Evaluation, Protocol
from ssl_bench.evalkit.knn import knn_predict  # the pure function lives in the core (shared with the kNN monitor)
from ssl_bench.evalkit.recipes import KNN_FIELDS
from ssl_bench.metrics import CLASSIFICATION_METRICS, classification_metrics
from ssl_bench.registry import register_evaluation
from ssl_bench.validate import DIM, POSITIVE


def _positive(name: str, value: Any, kind: type) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if kind is int:
        ok = ok and isinstance(value, int)
    if not ok:  # a temperature of inf gives every neighbour the same vote; 0 divides by zero
        allowed = "an integer >= 1" if kind is int else "a finite number > 0"
        raise UserError(f"evaluation knn: params.{name}: bad value {value!r}; allowed: {allowed}")


@register_evaluation("knn")
class KNNEvaluation(Evaluation):
    """Top-1 (and top-5 with more than 5 classes) of the weighted kNN on the test split, bank = train split."""

    name = "knn"
    protocols = (Protocol("knn", "kNN", 10, CLASSIFICATION_METRICS, table="knn", recipe_fields=KNN_FIELDS),)
    defaults = {"k": 200, "temperature": 0.07, "dataset": None, "batch_size": 256}
    param_ranges = {"k": DIM, "temperature": POSITIVE, "batch_size": DIM}  # checked by suite validation

    def __init__(self, **params: Any):
        super().__init__(**params)
        _positive("k", self.params["k"], int)
        _positive("temperature", self.params["temperature"], float)
        _positive("batch_size", self.params["batch_size"], int)

    def recipe(self, run: dict[str, Any]) -> dict[str, Any]:
        """Bank: the whole train split; classified: the whole test split; the final encoder."""
        return {"k": self.params["k"], "temperature": float(self.params["temperature"]), "bank": "train",
                "split": "test", "n_eval": "all", "epoch": "final"}

    def evaluate(self, ctx: EvalContext) -> list[dict[str, Any]]:
        name = self.params["dataset"] or ctx.pretrain.name
        bundle = ctx.pretrain if name == ctx.pretrain.name else ctx.get_dataset(name)
        train_x, train_y = ctx.features(name, "train")
        test_x, test_y = ctx.features(name, "test")
        p = self.params
        scores = knn_predict(train_x.to(ctx.device), train_y, test_x, bundle.num_classes,
                             k=p["k"], temperature=p["temperature"], chunk=p["batch_size"])
        extra = {"k": min(p["k"], len(train_x)), "temperature": p["temperature"],
                 "n_train": len(train_x), "n_test": len(test_x)}
        values = classification_metrics(scores.cpu(), test_y.cpu(), bundle.metric)
        return [{"protocol": self.protocols[0].name, "eval_dataset": name, "metric": metric, "value": value,
                 "extra": dict(extra)}
                for metric, value in values.items()]
