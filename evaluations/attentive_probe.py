"""Attentive probe: a frozen encoder's spatial tokens pooled by a small cross-attention head, then a linear classifier.

The head is V-JEPA's AttentiveClassifier (facebookresearch/jepa src/models/attentive_pooler.py; see
ssl_bench.evalkit.attentive): one learnable query attends to the tokens, a residual MLP, a linear layer. Tokens are
a ViT's patch tokens or a CNN's last feature map (one token per spatial position), extracted once from unaugmented
images and cached in half precision (ctx.features(..., kind="tokens")), so every epoch and every lr reuses them.
One head per lr trains on train with AdamW and a per-step cosine schedule; the head best on val (top1, or the
dataset's mean_per_class) is chosen and its test top1/top5 reported, as linear_sgd does; `refit: true` trains the
chosen lr again on train + val. The defaults are a CPU-sized grid (V-JEPA trains 20 epochs at lr 1e-3 on
augmented video clips; the Efficient Probing paper sweeps lrs as well).
"""
from __future__ import annotations

from typing import Any

import torch

from ssl_bench import validate as v
from ssl_bench.errors import UserError
from ssl_bench.evaluation import EvalContext, Evaluation, Protocol
from ssl_bench.evalkit.attentive import AttentiveClassifier, default_heads, predict_heads, train_heads
from ssl_bench.evalkit.finetune import number_list, positive_int
from ssl_bench.evalkit.probe import probe_metric
from ssl_bench.evalkit.recipes import ATTENTIVE_FIELDS, selection
from ssl_bench.metrics import CLASSIFICATION_METRICS, classification_metrics
from ssl_bench.registry import register_evaluation

WHERE = "evaluation attentive_probe: params"


@register_evaluation("attentive_probe")
class AttentiveProbeEvaluation(Evaluation):
    """Top-1 (and top-5 with more than 5 classes) of the attentive head chosen on val."""

    name = "attentive_probe"
    protocols = (Protocol("attentive_probe", "Attentive probe", 25, CLASSIFICATION_METRICS, table="linear",
                          short="attentive", recipe_fields=ATTENTIVE_FIELDS),)
    defaults = {"dataset": None, "lrs": [1e-3, 1e-2, 1e-1], "epochs": 20, "batch_size": 256,
                "weight_decay": 0.01, "num_heads": None, "refit": False}
    feature_kinds = ("tokens",)  # the run's feature store extracts them with the pooled features, in one pass

    def __init__(self, **params: Any):
        super().__init__(**params)
        p = self.params
        p["lrs"] = number_list(p["lrs"], f"{WHERE}.lrs")
        p["epochs"] = positive_int(p["epochs"], f"{WHERE}.epochs")
        p["batch_size"] = positive_int(p["batch_size"], f"{WHERE}.batch_size")
        p["weight_decay"] = v.as_float(p["weight_decay"], f"{WHERE}.weight_decay", lo=0)
        if p["num_heads"] is not None:
            p["num_heads"] = positive_int(p["num_heads"], f"{WHERE}.num_heads")
        p["refit"] = v.as_bool(p["refit"], f"{WHERE}.refit")

    def recipe(self, run: dict[str, Any]) -> dict[str, Any]:
        p = self.params
        return {"head": "vjepa_attentive_pooler", "optimizer": "adamw", "weight_decay": p["weight_decay"],
                "schedule": "cosine", "epochs": p["epochs"], "batch_size": p["batch_size"],
                "lrs_per_256": [lr * 256 / p["batch_size"] for lr in p["lrs"]], "select": selection(len(p["lrs"])),
                "train_on": "train+val" if p["refit"] else "train", "features": "frozen tokens, unaugmented"}

    def evaluate(self, ctx: EvalContext) -> list[dict[str, Any]]:
        p = self.params
        name = p["dataset"] or ctx.pretrain.name
        bundle = ctx.pretrain if name == ctx.pretrain.name else ctx.get_dataset(name)
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = (ctx.features(name, s, kind="tokens")
                                                    for s in ("train", "val", "test"))
        if len(va_x) == 0:
            raise UserError(f"evaluation attentive_probe: dataset '{name}' has an empty val split; allowed: a "
                            "dataset with a held-out val split to choose the learning rate")
        dim = int(tr_x.shape[-1])
        heads_n = p["num_heads"] or default_heads(dim)
        if dim % heads_n:
            raise UserError(f"{WHERE}.num_heads = {heads_n}: does not divide the token width {dim}; allowed: a "
                            f"divisor of {dim}")
        heads = self._train(ctx, tr_x, tr_y, bundle.num_classes, heads_n, p["lrs"])
        select_by = "mean_per_class" if bundle.metric == "mean_per_class" else "top1"
        val_scores = predict_heads(heads, va_x, ctx.device, p["batch_size"])
        curve = [probe_metric(s, va_y, select_by) for s in val_scores]
        chosen = max(range(len(curve)), key=lambda k: (curve[k], -k))  # ties: the first lr listed
        head = heads[chosen]
        if p["refit"]:
            head = self._train(ctx, torch.cat([tr_x, va_x]), torch.cat([tr_y, va_y]), bundle.num_classes, heads_n,
                               [p["lrs"][chosen]])[0]
        values = classification_metrics(predict_heads([head], te_x, ctx.device, p["batch_size"])[0], te_y,
                                        bundle.metric)
        extra = {"lr": p["lrs"][chosen], "val_metric": select_by,
                 "val_curve": [[lr, c] for lr, c in zip(p["lrs"], curve)], "num_heads": heads_n,
                 "num_tokens": int(tr_x.shape[1]), "token_dim": dim, "epochs": p["epochs"],
                 "n_train": len(tr_x) + (len(va_x) if p["refit"] else 0), "n_val": len(va_x), "n_test": len(te_x)}
        return [{"protocol": self.protocols[0].name, "eval_dataset": name, "metric": m, "value": val,
                 "extra": dict(extra)}
                for m, val in values.items()]

    def _train(self, ctx: EvalContext, x: torch.Tensor, y: torch.Tensor, num_classes: int, num_heads: int,
               lrs: list[float]) -> list[AttentiveClassifier]:
        p = self.params
        heads = [AttentiveClassifier(int(x.shape[-1]), num_classes, num_heads, seed=ctx.seed) for _ in lrs]
        with ctx.progress(f"attentive_probe: {len(lrs)} head(s) on {len(x)} images", p["epochs"], "epoch") as task:
            train_heads(heads, x, y, lrs=lrs, epochs=p["epochs"], batch_size=p["batch_size"],
                        weight_decay=p["weight_decay"], seed=ctx.seed, device=ctx.device, on_epoch=task.update)
        return heads
