"""Semi-supervised evaluation: fine-tune the whole network on a small labelled subset (BYOL Table 2).

For each label fraction (1% and 10% by default) a class-balanced subset of the train split is drawn with a
fixed seed (or read from `subset_file`, SimCLR's 1percent.txt format) and saved under
<run>/label_subsets/. A copy of the encoder plus a new linear head is fine-tuned on it with SGD Nesterov, no
weight decay, crop + flip; lr x epochs come from a small grid chosen on the val split (disjoint from the
labelled images), and the chosen model's top-1 / top-5 on the test split is reported. BYOL's grid:
lr {0.005..0.1} x epochs {30, 50} [protocols.md]; the default here is smaller for CPUs.
The supervised baseline (a method that trains with labels) starts from a fresh initialisation instead, as
the paper's baseline row does, with the same subset and budget.
Rows record the nominal `label_fraction` (the one asked for, or the subset file's: `subset_fraction`, a
`# label_fraction: 0.01` header line, or SimCLR's `1percent.txt` / `10percent.txt` names), so tables key on 1%
and 10%; the realised count and share are `extra.n_labelled` and `extra.labelled_share` (SimCLR's 1% file is
12,811 / 1,281,167 = 0.99995%).
"""
from __future__ import annotations

from typing import Any

from ssl_bench import distributed as dist
from ssl_bench import validate as v
from ssl_bench.errors import UserError
from ssl_bench.evaluation import EvalContext, Evaluation, Protocol
from ssl_bench.evalkit.label_subsets import balanced_subset, check_fraction, check_subset_file, declared_fraction, save_subset, subset_file_split
from ssl_bench.evalkit.recipes import SEMI_FIELDS, SGD_HEAD, check_crop_sampler, crop_terms, lrs_per_256, selection, subset_identity
from ssl_bench.metrics import CLASSIFICATION_METRICS, classification_metrics, selection_metric
from ssl_bench.registry import register_evaluation

from ssl_bench.evalkit.finetune import InputPrep, adaptation_info, batch_scaled_lrs, crop_scale, finetune_grid, number_list, positive_int, predict

WHERE = "evaluation semi_supervised"


@register_evaluation("semi_supervised")
class SemiSupervisedEvaluation(Evaluation):
    """Rows per label fraction: top1 (and top5 with more than 5 classes) on test, label_fraction set."""

    name = "semi_supervised"
    protocols = (Protocol("semi_supervised", "Semi-supervised", 40, CLASSIFICATION_METRICS, table="semi",
                          short="semi", recipe_fields=SEMI_FIELDS),)
    defaults = {"dataset": None, "fractions": [0.01, 0.1], "subset_file": None, "subset_seed": None,
                "subset_fraction": None, "lrs": [0.01, 0.05], "epochs": [30], "batch_size": 256,
                "crop_scale": [0.08, 1.0], "flip_p": 0.5, "lr_batch_scaling": False, "crop_sampler": "torchvision"}

    def __init__(self, **params: Any):
        super().__init__(**params)
        p, w = self.params, f"{WHERE}: params"
        if not isinstance(p["fractions"], (list, tuple)) or not p["fractions"]:
            raise UserError(f"{w}.fractions: bad value {p['fractions']!r}; allowed: a non-empty list of numbers "
                            "in (0, 1]")
        p["fractions"] = [check_fraction(f, f"{w}.fractions") for f in p["fractions"]]
        p["lrs"] = number_list(p["lrs"], f"{w}.lrs")
        p["epochs"] = number_list(p["epochs"], f"{w}.epochs", kind=int)
        p["batch_size"] = positive_int(p["batch_size"], f"{w}.batch_size")
        p["crop_scale"] = list(crop_scale(p["crop_scale"], f"{w}.crop_scale"))
        p["flip_p"] = v.as_float(p["flip_p"], f"{w}.flip_p", lo=0, hi=1)
        p["lr_batch_scaling"] = v.as_bool(p["lr_batch_scaling"], f"{w}.lr_batch_scaling")  # finetune.batch_scaled_lrs
        seed = p["subset_seed"]
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise UserError(f"{w}.subset_seed: bad value {seed!r}; allowed: an integer >= 0 (default: the run seed)")
        p["crop_sampler"] = check_crop_sampler(p["crop_sampler"], f"{w}.crop_sampler")
        if p["subset_fraction"] is not None:
            p["subset_fraction"] = check_fraction(p["subset_fraction"], f"{w}.subset_fraction")
        if p["subset_file"] is not None:
            check_subset_file(p["subset_file"], f"{w}.subset_file")  # exists and lists entries: before any run
            p["subset_fraction"] = p["subset_fraction"] or declared_fraction(p["subset_file"], f"{w}.subset_fraction")

    def recipe(self, run: dict[str, Any]) -> dict[str, Any]:
        p = self.params
        seed = run.get("seed", 0) if p["subset_seed"] is None else p["subset_seed"]
        return {"optimizer": SGD_HEAD, "weight_decay": 0.0, "schedule": "cosine", "epochs": list(p["epochs"]),
                "batch_size": p["batch_size"], "lrs_per_256": lrs_per_256(p["lrs"], p["batch_size"],
                                                                          p["lr_batch_scaling"]),
                "select": selection(len(p["lrs"]) * len(p["epochs"])),
                "subset": subset_identity(p["subset_file"], seed), **crop_terms(p)}

    def _subsets(self, ctx: EvalContext, name: str, bundle) -> list[tuple[float | None, Any, str, Any, Any]]:
        """(nominal fraction, indices into pool, file stem, pool, val) per labelled subset:
        the pool is train (a subset file on a folder dataset: train + its val hold-out, see subset_file_split)."""
        p = self.params
        if p["subset_file"]:
            pool, idx, val = subset_file_split(p["subset_file"], bundle)
            return [(p["subset_fraction"], idx, f"{name}_from_file", pool, val)]
        seed = ctx.seed if p["subset_seed"] is None else p["subset_seed"]
        return [(f, balanced_subset(bundle.train.labels, f, seed), f"{name}_{100 * f:g}pct_seed{seed}", bundle.train,
                 bundle.val) for f in p["fractions"]]

    def evaluate(self, ctx: EvalContext) -> list[dict[str, Any]]:
        p = self.params
        name = p["dataset"] or ctx.pretrain.name
        bundle = ctx.pretrain if name == ctx.pretrain.name else ctx.get_dataset(name)
        from_scratch = bool(ctx.method_needs_labels)
        select_by = selection_metric(bundle.metric)
        prep = InputPrep.from_context(ctx, p["crop_scale"], p["flip_p"], p["crop_sampler"])
        rows: list[dict[str, Any]] = []
        for fraction, idx, stem, train, val in self._subsets(ctx, name, bundle):
            saved = None
            if dist.is_main():
                header = (f"labelled subset of the '{name}' train split ({len(idx)} of {len(train)} images); "
                          f"split_info {bundle.split_info}\nsource {p['subset_file'] or 'balanced_subset'}\n"
                          f"label_fraction: {fraction:g}")
                saved = str(save_subset(ctx.out_dir, stem, idx, train.paths, header))
            labelled = train.subset(idx)
            counts = labelled.labels.long().bincount(minlength=bundle.num_classes) if labelled.labels.dim() == 1 \
                else (labelled.labels > 0).sum(0)
            grid = {"lr": batch_scaled_lrs(p["lrs"], p["batch_size"], p["lr_batch_scaling"]), "epochs": p["epochs"]}
            model, chosen, curve = finetune_grid(ctx, bundle, labelled, grid, prep=prep, from_scratch=from_scratch,
                                                 batch_size=p["batch_size"], select_by=select_by, where=WHERE, val=val)
            scores, y = predict(model, bundle.test, prep, ctx.device, p["batch_size"], ctx.num_workers)
            values = classification_metrics(scores[0], y, bundle.metric)
            actual = len(idx) / len(train)
            extra = {"subset_file": saved, "n_labelled": len(idx), "labelled_share": actual,
                     "per_class_min": int(counts.min()), "per_class_max": int(counts.max()),
                     "from_scratch": from_scratch, **chosen, "val_metric": select_by, "val_curve": curve,
                     "n_val": len(val), "n_test": len(bundle.test), **adaptation_info(bundle, ctx)}
            # a fine-tuned copy (or a fresh net): the frozen encoder's collapse does not decide these rows
            rows += [{"protocol": self.protocols[0].name, "eval_dataset": name, "metric": m, "value": v,
                      "label_fraction": fraction, "extra": dict(extra),
                      "uses_frozen_encoder": False} for m, v in values.items()]
            del model
        return rows
