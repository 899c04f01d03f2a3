"""`finetune`, fine-tuning with layer-wise lr decay (this file is not finetune.py: that old path is an alias of
evalkit/finetune.py, ssl_bench/_moved.py): MAE's end-to-end fine-tuning protocol for ViTs (He et al. 2021,
facebookresearch/mae FINETUNE.md, main_finetune.py, util/lr_decay.py), beside the SGD fine-tuning of
semi_supervised and transfer.

A copy of the encoder plus a new linear head is trained on the whole train split with AdamW (betas 0.9, 0.999),
weight decay 0.05 except on 1-d tensors, biases, the position embedding and class token, lr = blr x batch / 256
warmed up for `warmup_epochs` and then cosine-decayed to `min_lr` per step, and each ViT layer's lr scaled by
layer_decay ** (L + 1 - layer id) (L blocks; id 0 = patch embedding / tokens, L + 1 = final norm and head).
`lrs` are MAE's blr values (per 256 images); with several, each is fine-tuned and the one best on the val split
is reported on test. MAE: ViT-B/16 blr 5e-4, layer_decay 0.65, 100 epochs, 5 warm-up, batch 1024, wd 0.05;
ViT-L/H layer_decay 0.75. Not here (named by the `regularization` recipe field, so a published MAE row is never
subtracted from ours): MAE's mixup 0.8, cutmix 1.0, label smoothing 0.1, RandErase 0.25, drop path and
RandAugment; the head keeps evalkit's small random init (MAE: std 2e-5) and the backbone's declared pooling.
An encoder without ViT blocks (a CNN) is fine-tuned the same way with layer decay off (its rows record
layer_decay 1.0). The supervised baseline trains a fresh network instead, as semi_supervised does.
"""
from __future__ import annotations

from typing import Any

from ssl_bench import validate as v
from ssl_bench.errors import UserError
from ssl_bench.evaluation import EvalContext, Evaluation, Protocol
from ssl_bench.evalkit.finetune import Classifier, InputPrep, adaptation_info, crop_scale, number_list, positive_int, predict, trainable_encoder
from ssl_bench.evalkit.probe import probe_metric
from ssl_bench.evalkit.recipes import CROP_FIELDS, check_crop_sampler, crop_terms, selection
from ssl_bench.evalkit.vit_finetune import has_vit_blocks, train_layer_decay
from ssl_bench.metrics import CLASSIFICATION_METRICS, classification_metrics
from ssl_bench.registry import register_evaluation

WHERE = "evaluation finetune"
FIELDS = ("optimizer", "schedule", "epochs", "warmup_epochs", "batch_size", "lrs_per_256", "weight_decay",
          "layer_decay", "regularization", "select", "train_on") + CROP_FIELDS
NO_REGULARIZATION = "none"  # MAE's: mixup 0.8, cutmix 1.0, smoothing 0.1, reprob 0.25, drop path


@register_evaluation("finetune")
class FinetuneEvaluation(Evaluation):
    """Top-1 (and top-5 with more than 5 classes) on test of the AdamW + layer-decay fine-tuned network."""

    name = "finetune"
    protocols = (Protocol("finetune", "Fine-tuned (layer decay)", 45, CLASSIFICATION_METRICS, short="finetune",
                          recipe_fields=FIELDS),)
    defaults = {"dataset": None, "lrs": [5e-4], "layer_decay": 0.75, "weight_decay": 0.05, "epochs": 10,
                "warmup_epochs": 1, "min_lr": 1e-6, "batch_size": 128, "crop_scale": [0.08, 1.0],
                "flip_p": 0.5, "crop_sampler": "torchvision"}

    def __init__(self, **params: Any):
        super().__init__(**params)
        p, w = self.params, f"{WHERE}: params"
        p["lrs"] = number_list(p["lrs"], f"{w}.lrs")
        p["layer_decay"] = v.as_float(p["layer_decay"], f"{w}.layer_decay", lo=0, hi=1)
        if p["layer_decay"] <= 0:
            raise UserError(f"{w}.layer_decay: bad value {p['layer_decay']!r}; allowed: a number in (0, 1]; 1.0: off")
        p["weight_decay"] = v.as_float(p["weight_decay"], f"{w}.weight_decay", lo=0)
        p["min_lr"] = v.as_float(p["min_lr"], f"{w}.min_lr", lo=0)
        p["epochs"] = positive_int(p["epochs"], f"{w}.epochs")
        if isinstance(p["warmup_epochs"], bool) or not isinstance(p["warmup_epochs"], int) or \
                not 0 <= p["warmup_epochs"] <= p["epochs"]:
            raise UserError(f"{w}.warmup_epochs: bad value {p['warmup_epochs']!r}; allowed: an integer in "
                            f"[0, epochs={p['epochs']}]")
        p["batch_size"] = positive_int(p["batch_size"], f"{w}.batch_size")
        p["crop_scale"] = list(crop_scale(p["crop_scale"], f"{w}.crop_scale"))
        p["flip_p"] = v.as_float(p["flip_p"], f"{w}.flip_p", lo=0, hi=1)
        p["crop_sampler"] = check_crop_sampler(p["crop_sampler"], f"{w}.crop_sampler")

    def recipe(self, run: dict[str, Any], layer_decay: float | None = None) -> dict[str, Any]:
        p = self.params
        return {"optimizer": "adamw", "schedule": f"warmup {p['warmup_epochs']} + cosine", "epochs": p["epochs"],
                "warmup_epochs": p["warmup_epochs"], "batch_size": p["batch_size"], "lrs_per_256": list(p["lrs"]),
                "weight_decay": p["weight_decay"],
                "layer_decay": p["layer_decay"] if layer_decay is None else layer_decay,
                "regularization": NO_REGULARIZATION, "select": selection(len(p["lrs"])), "train_on": "train",
                **crop_terms(p)}

    def evaluate(self, ctx: EvalContext) -> list[dict[str, Any]]:
        p = self.params
        name = p["dataset"] or ctx.pretrain.name
        bundle = ctx.pretrain if name == ctx.pretrain.name else ctx.get_dataset(name)
        several = len(p["lrs"]) > 1
        if several and len(bundle.val) == 0:
            raise UserError(f"{WHERE}: dataset '{name}' has an empty val split; allowed: a dataset with a held-out "
                            "val split to choose among several lrs, or a single lr")
        from_scratch = bool(ctx.method_needs_labels)
        prep = InputPrep.from_context(ctx, p["crop_scale"], p["flip_p"], p["crop_sampler"])
        select_by = "mean_per_class" if bundle.metric == "mean_per_class" else "top1"
        best, best_lr, best_val, curve, decay = None, None, float("-inf"), [], p["layer_decay"]
        task = ctx.progress(f"finetune {name}: {len(p['lrs'])} lr(s) on {len(bundle.train)} images",
                            len(p["lrs"]) * p["epochs"], "epoch")
        for i, blr in enumerate(p["lrs"]):
            model = Classifier(trainable_encoder(ctx, from_scratch), ctx.feature_dim, bundle.num_classes,
                               seed=ctx.seed + i)
            decay = p["layer_decay"] if has_vit_blocks(model) else 1.0  # a CNN: no blocks to decay over
            train_layer_decay(model, bundle.train, prep, lr=blr * p["batch_size"] / 256, epochs=p["epochs"],
                              warmup_epochs=p["warmup_epochs"], weight_decay=p["weight_decay"], layer_decay=decay,
                              batch_size=p["batch_size"], seed=ctx.seed + i, device=ctx.device,
                              min_lr=p["min_lr"], num_workers=ctx.num_workers, on_epoch=task.update)
            score = None  # one lr: nothing to choose, val unused
            if several:
                scores, y = predict(model, bundle.val, prep, ctx.device, p["batch_size"], ctx.num_workers)
                score = probe_metric(scores[0], y, select_by)
                task.note(lr=f"{blr:g}", val=f"{score:.2f}")
            curve.append({"lr": blr, "val": score})
            if best is None or (score is not None and score > best_val):
                best, best_lr, best_val = model, blr, score
        task.close()
        scores, y = predict(best, bundle.test, prep, ctx.device, p["batch_size"], ctx.num_workers)
        values = classification_metrics(scores[0], y, bundle.metric)
        extra = {"lr": best_lr, "val_metric": select_by, "val_curve": curve, "from_scratch": from_scratch,
                 "layer_decay_applied": decay, "n_train": len(bundle.train), "n_test": len(bundle.test),
                 **adaptation_info(bundle, ctx)}
        recipe = self.recipe(ctx.run_config, decay)
        return [{"protocol": "finetune", "eval_dataset": name, "metric": m, "value": val, "extra": dict(extra),
                 "recipe": recipe, "uses_frozen_encoder": False} for m, val in values.items()]
