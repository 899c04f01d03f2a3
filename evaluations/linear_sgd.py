"""Linear evaluation, the BYOL paper's protocol: a linear head trained by SGD on augmented images.

Frozen encoder in eval mode (no BN statistics update), random-resized-crop + flip on training images, SGD
Nesterov momentum 0.9, no weight decay, cosine schedule; the lr is chosen from a sweep on the val split and
that head's test accuracy is reported. BYOL: batch 1024, 80 epochs, lr in {0.4, 0.3, 0.2, 0.1, 0.05}
[protocols.md]. The defaults here are a CPU-sized version (fewer epochs, three lrs). All lrs train at once:
one head per lr on the same features of the same augmented batch, so the sweep costs one pass of the encoder.
`refit: true` then trains a new head at the chosen lr on train + val and reports that one, as the simplified
single-lr pipeline of [DM eval_experiment.py:293-297] trains on TRAIN_AND_VALID (the paper's protocol trains on
TRAIN, picks on VALID and tests that head [DM README.md:92-98]: `refit: false`); `lr_batch_scaling: true` reads
the lrs as per-256 values scaled by batch_size / 256 ([DM schedules.py:34] scales configs/eval.py's
base_learning_rate 0.2). Both default to false (lrs as listed, the val-chosen head reported), which keeps
earlier suites' numbers. `crop_sampler: deepmind` draws the training crops as [DM utils/dataset.py:192-194,
206-233] does (LINEAR_TRAIN). Every row records its recipe (ssl_bench.evalkit.recipes): lrs per 256 images,
epochs, batch, what the head trained on and how its lr was chosen.
"""
from __future__ import annotations

from typing import Any

import torch

from ssl_bench import validate as v
from ssl_bench.errors import UserError
from ssl_bench.evaluation import EvalContext, Evaluation, Protocol
from ssl_bench.metrics import CLASSIFICATION_METRICS, classification_metrics, selection_metric
from ssl_bench.evalkit.probe import probe_metric
from ssl_bench.evalkit.recipes import LINEAR_SGD_FIELDS, SGD_HEAD, check_crop_sampler, crop_terms, lrs_per_256, selection
from ssl_bench.registry import register_evaluation

from ssl_bench.evalkit.finetune import Classifier, InputPrep, adaptation_info, batch_scaled_lrs, crop_scale, number_list, positive_int, train_classifier


@torch.no_grad()
def cached_scores(model: Classifier, ctx: EvalContext, name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores heads x N x classes, labels) of the frozen-encoder heads on the run's cached features of the
    unaugmented `split` images: what predict() on the images gives (the same eval view, the same frozen encoder),
    without another encoder pass."""
    feats, labels = ctx.features(name, split)
    f = feats.to(ctx.device, torch.float32)
    return torch.stack([head(f) for head in model.heads]).float().cpu(), labels.cpu()


@register_evaluation("linear_sgd")
class LinearSGDEvaluation(Evaluation):
    """Top-1 (and top-5 with more than 5 classes) of the SGD-trained linear head chosen on val."""

    name = "linear_sgd"
    protocols = (Protocol("linear_sgd", "Linear (SGD)", 30, CLASSIFICATION_METRICS, table="linear",
                          recipe_fields=LINEAR_SGD_FIELDS),)  # BYOL Table 1
    defaults = {"dataset": None, "lrs": [0.4, 0.1, 0.02], "epochs": 20, "batch_size": 256,
                "crop_scale": [0.08, 1.0], "flip_p": 0.5, "refit": False, "lr_batch_scaling": False,
                "crop_sampler": "torchvision"}

    def __init__(self, **params: Any):
        super().__init__(**params)
        p, w = self.params, "evaluation linear_sgd: params"
        p["lrs"] = number_list(p["lrs"], f"{w}.lrs")
        p["epochs"] = positive_int(p["epochs"], f"{w}.epochs")
        p["batch_size"] = positive_int(p["batch_size"], f"{w}.batch_size")
        p["crop_scale"] = list(crop_scale(p["crop_scale"], f"{w}.crop_scale"))
        p["flip_p"] = v.as_float(p["flip_p"], f"{w}.flip_p", lo=0, hi=1)
        p["refit"] = v.as_bool(p["refit"], f"{w}.refit")
        p["lr_batch_scaling"] = v.as_bool(p["lr_batch_scaling"], f"{w}.lr_batch_scaling")
        p["crop_sampler"] = check_crop_sampler(p["crop_sampler"], f"{w}.crop_sampler")

    def recipe(self, run: dict[str, Any]) -> dict[str, Any]:
        p = self.params
        return {"optimizer": SGD_HEAD, "weight_decay": 0.0, "schedule": "cosine", "epochs": p["epochs"],
                "batch_size": p["batch_size"], "lrs_per_256": lrs_per_256(p["lrs"], p["batch_size"],
                                                                          p["lr_batch_scaling"]),
                "select": selection(len(p["lrs"])), "train_on": "train+val" if p["refit"] else "train",
                **crop_terms(p)}

    def evaluate(self, ctx: EvalContext) -> list[dict[str, Any]]:
        p = self.params
        name = p["dataset"] or ctx.pretrain.name
        bundle = ctx.pretrain if name == ctx.pretrain.name else ctx.get_dataset(name)
        if len(bundle.val) == 0:
            raise UserError(f"evaluation linear_sgd: dataset '{name}' has an empty val split; allowed: a dataset "
                            "with a held-out val split to choose the learning rate")
        prep = InputPrep.from_context(ctx, p["crop_scale"], p["flip_p"], p["crop_sampler"])
        lrs = batch_scaled_lrs(p["lrs"], p["batch_size"], p["lr_batch_scaling"])
        model = self._train(ctx, bundle.train, bundle.num_classes, prep, lrs)
        select_by = selection_metric(bundle.metric)  # the dataset's registered metric, as the other probes
        val_scores, val_y = cached_scores(model, ctx, name, "val")  # the run's one pass over val
        curve = [probe_metric(s, val_y, select_by) for s in val_scores]
        chosen = head = max(range(len(curve)), key=lambda k: (curve[k], -k))  # ties: the first lr listed
        if p["refit"]:  # the chosen lr again, on train + val [DM eval_experiment.py: TRAIN_AND_VALID]
            model, head = self._train(ctx, bundle.train.concat(bundle.val), bundle.num_classes, prep, [lrs[chosen]]), 0
        test_scores, test_y = cached_scores(model, ctx, name, "test")
        values = classification_metrics(test_scores[head], test_y, bundle.metric)
        extra = {"lr": p["lrs"][chosen], "lr_used": lrs[chosen], "val_metric": select_by,
                 "val_curve": [[lr, v] for lr, v in zip(p["lrs"], curve)], "refit_on_train_val": p["refit"],
                 "epochs": p["epochs"], "n_train": len(bundle.train) + (len(bundle.val) if p["refit"] else 0),
                 "n_val": len(bundle.val), "n_test": len(bundle.test), **adaptation_info(bundle, ctx)}
        return [{"protocol": self.protocols[0].name, "eval_dataset": name, "metric": m, "value": v,
                 "extra": dict(extra)}
                for m, v in values.items()]

    def _train(self, ctx: EvalContext, data, num_classes: int, prep: InputPrep, lrs: list[float]) -> Classifier:
        """One linear head per lr on the frozen encoder, trained together on `data`."""
        p = self.params
        model = Classifier(ctx.encoder, ctx.feature_dim, num_classes, num_heads=len(lrs), frozen=True, seed=ctx.seed)
        with ctx.progress(f"linear_sgd: {len(lrs)} head(s) on {len(data)} images", p["epochs"], "epoch") as task:
            return train_classifier(model, data, prep, lrs=lrs, epochs=p["epochs"], batch_size=p["batch_size"],
                                    seed=ctx.seed, device=ctx.device, num_workers=ctx.num_workers,
                                    on_epoch=task.update)
