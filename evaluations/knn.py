"""Weighted k-nearest-neighbour classifier on frozen features (InstDisc, Wu et al. 2018).

Features are l2-normalized; each test point takes its k most cosine-similar training points
(the memory bank) and every neighbour votes for its class with weight exp(similarity / T).
Defaults k=200, T=0.07 follow InstDisc (lightly uses T=0.1, solo-learn k=20).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ssl_bench.errors import UserError
from ssl_bench.evaluation import EvalContext, Evaluation
from ssl_bench.metrics import classification_metrics
from ssl_bench.registry import register_evaluation
from ssl_bench.validate import DIM, POSITIVE


@torch.no_grad()
def knn_predict(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.07,
    chunk: int = 256,
) -> torch.Tensor:
    """Class scores N_test x C: per class, the sum of exp(s / T) over the top-k neighbours of that class.

    `train_labels` is int N (single label) or float N x C (multi-label: a neighbour votes for each of
    its positive classes). Each row of scores is scaled by exp(-s_max / T), s_max the row's best
    similarity, so small T cannot overflow; ranking within a row is unchanged.
    k is clamped to the bank size. Memory is chunk x N_train similarities at a time.
    """
    if len(train_feats) == 0:
        raise ValueError("knn_predict: empty memory bank")
    k = min(k, len(train_feats))
    bank = F.normalize(train_feats.float(), dim=1)
    test = F.normalize(test_feats.float().to(bank.device), dim=1)
    labels = train_labels.to(bank.device)
    multilabel = labels.dim() == 2
    out = torch.empty(len(test), num_classes, device=bank.device)
    for start in range(0, len(test), chunk):
        sims, idx = (test[start:start + chunk] @ bank.T).topk(k, dim=1)
        weights = ((sims - sims[:, :1]) / temperature).exp()  # topk is sorted: column 0 is the max
        if multilabel:
            scores = torch.einsum("nk,nkc->nc", weights, labels[idx].float())
        else:
            scores = torch.zeros(len(idx), num_classes, device=bank.device)
            scores.scatter_add_(1, labels[idx], weights)
        out[start:start + chunk] = scores
    return out


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
    defaults = {"k": 200, "temperature": 0.07, "dataset": None, "batch_size": 256}
    param_ranges = {"k": DIM, "temperature": POSITIVE, "batch_size": DIM}  # checked by suite validation

    def __init__(self, **params: Any):
        super().__init__(**params)
        _positive("k", self.params["k"], int)
        _positive("temperature", self.params["temperature"], float)
        _positive("batch_size", self.params["batch_size"], int)

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
        return [{"protocol": "knn", "eval_dataset": name, "metric": metric, "value": value, "extra": dict(extra)}
                for metric, value in values.items()]
