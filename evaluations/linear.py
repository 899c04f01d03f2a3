"""Linear probe, cheap variant (SimCLR/BYOL transfer protocol): L-BFGS logistic regression on frozen features.

Features are extracted once without augmentation (ctx.features), standardized with train statistics;
the L2 strength is swept over `num_l2` log-spaced values in `l2_range` (45 in [1e-6, 1e5] as in
SimCLR/BYOL), chosen on the val split, refit on train+val and reported on test.
"""
from __future__ import annotations

from typing import Any

import torch

from ssl_bench.errors import UserError
from ssl_bench.evaluation import EvalContext, Evaluation, Protocol
from ssl_bench.metrics import CLASSIFICATION_METRICS, classification_metrics, selection_metric
from ssl_bench.evalkit.probe import fit_logistic, l2_grid, score, standardize, sweep_logistic
from ssl_bench.evalkit.recipes import LBFGS_FIELDS
from ssl_bench.registry import register_evaluation


def lbfgs_recipe(params: dict[str, Any]) -> dict[str, Any]:
    """The recipe of the cached L-BFGS probe (this protocol and transfer_linear): features of unaugmented images,
    standardized, `num_l2` strengths in `l2_range` chosen on val, refit on train + val."""
    return {"classifier": "lbfgs_logistic", "features": "frozen, unaugmented", "standardize": True,
            "num_l2": params["num_l2"], "l2_range": [float(x) for x in params["l2_range"]],
            "select": "val" if params["num_l2"] > 1 else "none", "train_on": "train+val"}


def _as_positive(v: Any) -> float | None:
    """A positive float, accepting strings: PyYAML reads `1e-6` (no dot) as the string '1e-6'."""
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if 0 < f < float("inf") else None


@register_evaluation("linear")
class LinearEvaluation(Evaluation):
    """Top-1 (top-5 with more than 5 classes, plus the dataset's own metric) of an L-BFGS logistic probe."""

    name = "linear"
    protocols = (Protocol("linear", "Linear", 20, CLASSIFICATION_METRICS, table="linear",
                          recipe_fields=LBFGS_FIELDS),)  # the cached L-BFGS probe
    defaults = {"dataset": None, "l2_range": [1e-6, 1e5], "num_l2": 45, "max_iter": 1000}

    def __init__(self, **params: Any):
        super().__init__(**params)
        rng = self.params["l2_range"]
        ends = [_as_positive(v) for v in rng] if isinstance(rng, (list, tuple)) and len(rng) == 2 else [None]
        if None in ends or ends[0] > ends[1]:
            raise UserError(f"evaluation linear: params.l2_range = {rng!r}; allowed: [low, high] with 0 < low <= high")
        self.params["l2_range"] = ends
        for key in ("num_l2", "max_iter"):
            v = self.params[key]
            if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
                raise UserError(f"evaluation linear: params.{key} = {v!r}; allowed: a positive integer")

    def recipe(self, run: dict[str, Any]) -> dict[str, Any]:
        return lbfgs_recipe(self.params)

    def evaluate(self, ctx: EvalContext) -> list[dict[str, Any]]:
        name = self.params["dataset"] or ctx.pretrain.name
        bundle = ctx.pretrain if name == ctx.pretrain.name else ctx.get_dataset(name)
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = (ctx.features(name, s) for s in ("train", "val", "test"))
        if len(va_x) == 0:
            raise UserError(f"evaluation linear: dataset '{name}' has an empty val split; "
                            "allowed: a dataset with a held-out val split to choose the L2 strength")
        dev = ctx.device
        tr_x, va_x, te_x = standardize(*(t.to(dev, torch.float32) for t in (tr_x, va_x, te_x)))
        tr_y, va_y, te_y = (t.to(dev) for t in (tr_y, va_y, te_y))
        multilabel = tr_y.dim() == 2
        select_by = "map11" if multilabel else selection_metric(bundle.metric)
        grid = l2_grid(*self.params["l2_range"], self.params["num_l2"])
        it = self.params["max_iter"]
        with ctx.progress(f"linear {name}: L2 sweep + refit", len(grid) + 1, "fit") as task:
            best, val_curve = sweep_logistic(tr_x, tr_y, va_x, va_y, grid, metric=select_by, max_iter=it,
                                             num_classes=bundle.num_classes, on_fit=task.update)
            # Refit on train+val at the chosen strength (same train standardization).
            w, b = fit_logistic(torch.cat([tr_x, va_x]), torch.cat([tr_y, va_y]), best, max_iter=it,
                                num_classes=bundle.num_classes)
            task.update()
        values = classification_metrics(score(te_x, w, b).cpu(), te_y.cpu(), bundle.metric)
        extra = {"l2": best, "val_metric": select_by, "val_curve": [[l2, v] for l2, v in zip(grid, val_curve)],
                 "n_train": len(tr_x), "n_val": len(va_x), "n_test": len(te_x), "feature_dim": int(tr_x.shape[1])}
        return [{"protocol": self.protocols[0].name, "eval_dataset": name, "metric": metric, "value": value,
                 "extra": dict(extra)}
                for metric, value in values.items()]
