"""Transfer: evaluate the pretrained encoder on other datasets (BYOL Table 3).

variant `linear` (transfer_linear): frozen encoder, features extracted once, L2-regularized logistic
regression swept on val, refit on train+val, reported on test (the `linear` evaluation, run per dataset).
variant `finetune` (transfer_finetune): the whole network (a copy of the encoder + a new head), SGD Nesterov,
crop + flip, lr x weight-decay grid chosen on val; BYOL fine-tunes 20k steps at batch 256 [protocols.md], the
default here is a few epochs for CPUs.
Each dataset reports its own metric (top-1, mean per-class accuracy, or 11-point mAP for VOC2007) besides
top-1/top-5. Images are resized to the pretraining input size and channel-adapted; that is recorded in
`extra`. A dataset that is not available offline gives one failed row and the other datasets go on.
"""
from __future__ import annotations

from typing import Any

from ssl_bench import validate as v
from ssl_bench.errors import DatasetUnavailableError, UserError
from ssl_bench.evaluation import EvalContext, Evaluation, Protocol
from ssl_bench.metrics import CLASSIFICATION_METRICS, classification_metrics, selection_metric
from ssl_bench.registry import DATASETS, register_evaluation

from ssl_bench.evalkit.finetune import InputPrep, adaptation_info, batch_scaled_lrs, crop_scale, finetune_grid, number_list, positive_int, predict
from ssl_bench.evaluations.linear import LinearEvaluation, lbfgs_recipe
from ssl_bench.evalkit.recipes import FINETUNE_FIELDS, LBFGS_FIELDS, SGD_HEAD, check_crop_sampler, crop_terms, lrs_per_256, selection

VARIANTS = ("linear", "finetune")
WHERE = "evaluation transfer"


@register_evaluation("transfer")
class TransferEvaluation(Evaluation):
    name = "transfer"
    protocols = (Protocol("transfer_linear", "Transfer, linear", 50, CLASSIFICATION_METRICS, table="transfer",
                          short="transfer", recipe_fields=LBFGS_FIELDS),  # BYOL Table 3, frozen encoder
                 Protocol("transfer_finetune", "Transfer, fine-tuned", 60, CLASSIFICATION_METRICS, table="transfer",
                          short="finetune", recipe_fields=FINETUNE_FIELDS))  # one per variant: f"transfer_{variant}"
    defaults = {"datasets": [], "variant": "linear",
                # linear variant (as the `linear` evaluation)
                "l2_range": [1e-6, 1e5], "num_l2": 45, "max_iter": 1000,
                # finetune variant
                "lrs": [0.01, 0.1], "weight_decays": [0.0, 1e-4], "epochs": 5, "batch_size": 256,
                "crop_scale": [0.08, 1.0], "flip_p": 0.5,
                "lr_batch_scaling": False, "crop_sampler": "torchvision"}

    def __init__(self, **params: Any):
        super().__init__(**params)
        p, w = self.params, f"{WHERE}: params"
        names = p["datasets"]
        if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) and n for n in names):
            raise UserError(f"{w}.datasets: bad value {names!r}; allowed: a non-empty list of dataset names "
                            f"({', '.join(sorted(DATASETS.names()))})")
        import ssl_bench.data.datasets  # noqa: F401  (registers the built-in datasets)

        for n in names:
            DATASETS.get(n, where=f"{w}.datasets")
        if p["variant"] not in VARIANTS:
            raise UserError(f"{w}.variant: bad value {p['variant']!r}; allowed: one of {', '.join(VARIANTS)}")
        self._linear = LinearEvaluation(l2_range=p["l2_range"], num_l2=p["num_l2"], max_iter=p["max_iter"])
        p["lrs"] = number_list(p["lrs"], f"{w}.lrs")
        p["weight_decays"] = number_list(p["weight_decays"], f"{w}.weight_decays", allow_zero=True)
        p["epochs"] = positive_int(p["epochs"], f"{w}.epochs")
        p["batch_size"] = positive_int(p["batch_size"], f"{w}.batch_size")
        p["crop_scale"] = list(crop_scale(p["crop_scale"], f"{w}.crop_scale"))
        p["flip_p"] = v.as_float(p["flip_p"], f"{w}.flip_p", lo=0, hi=1)
        p["lr_batch_scaling"] = v.as_bool(p["lr_batch_scaling"], f"{w}.lr_batch_scaling")  # finetune.batch_scaled_lrs
        p["crop_sampler"] = check_crop_sampler(p["crop_sampler"], f"{w}.crop_sampler")

    def recipe(self, run: dict[str, Any]) -> dict[str, Any]:
        p = self.params
        if p["variant"] == "linear":
            return lbfgs_recipe(p)
        grid = len(p["lrs"]) * len(p["weight_decays"])
        return {"optimizer": SGD_HEAD, "schedule": "cosine", "budget": f"{p['epochs']} epochs",
                "batch_size": p["batch_size"], "weight_decays": list(p["weight_decays"]),
                "lrs_per_256": lrs_per_256(p["lrs"], p["batch_size"], p["lr_batch_scaling"]),
                "select": selection(grid), "train_on": "train", **crop_terms(p)}

    @property
    def protocol(self) -> str:
        return f"transfer_{self.params['variant']}"

    def evaluate(self, ctx: EvalContext) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for name in self.params["datasets"]:
            try:
                bundle = ctx.get_dataset(name)
            except DatasetUnavailableError as exc:
                rows.append({"protocol": self.protocol, "eval_dataset": name, "metric": None, "value": None,
                             "status": "failed", "error": str(exc), "extra": {}})
                continue
            rows += self._linear_rows(ctx, name, bundle) if self.params["variant"] == "linear" \
                else self._finetune_rows(ctx, name, bundle)
        return rows

    def _linear_rows(self, ctx: EvalContext, name: str, bundle) -> list[dict[str, Any]]:
        rows = LinearEvaluation(**{**self._linear.params, "dataset": name}).evaluate(ctx)
        for row in rows:
            row["protocol"] = self.protocol
            row["extra"].update(adaptation_info(bundle, ctx))
        return rows

    def _finetune_rows(self, ctx: EvalContext, name: str, bundle) -> list[dict[str, Any]]:
        p = self.params
        select_by = selection_metric(bundle.metric)  # map11 when multi-label
        grid = {"lr": batch_scaled_lrs(p["lrs"], p["batch_size"], p["lr_batch_scaling"]),
                "weight_decay": p["weight_decays"], "epochs": [p["epochs"]]}
        prep = InputPrep.from_context(ctx, p["crop_scale"], p["flip_p"], p["crop_sampler"])
        model, chosen, curve = finetune_grid(ctx, bundle, bundle.train, grid, prep=prep, from_scratch=False,
                                             batch_size=p["batch_size"], select_by=select_by, where=WHERE)
        scores, y = predict(model, bundle.test, prep, ctx.device, p["batch_size"], ctx.num_workers)
        values = classification_metrics(scores[0], y, bundle.metric)
        extra = {**chosen, "val_metric": "map11" if y.dim() == 2 else select_by, "val_curve": curve,
                 "n_train": len(bundle.train), "n_val": len(bundle.val), "n_test": len(bundle.test),
                 **adaptation_info(bundle, ctx)}
        # a fine-tuned copy: the frozen encoder's collapse does not decide these rows
        return [{"protocol": self.protocol, "eval_dataset": name, "metric": m, "value": v, "extra": dict(extra),
                 "uses_frozen_encoder": False} for m, v in values.items()]
