"""Label-free quality of the frozen features: RankMe, LiDAR and alpha-ReQ (formulas: ssl_bench.evalkit.quality).

RankMe and alpha-ReQ read the pooled features of the unaugmented `split` images (the ones kNN and linear read,
from the same pass); LiDAR reads `lidar_views` random crops (random-resized crop (0.08, 1) + flip, the view
linear_sgd trains on) of `lidar_images` evenly spaced images of the split, each image a class of its own. No
label is read. Rows: protocol "quality", metric "rankme" / "lidar" / "alpha_req"; `ssl-bench compare --quality`
and the report rank a suite's runs by each and correlate that with their kNN and linear top-1 (Spearman).
LiDAR's paper draws its views with the pretraining augmentation; this uses one fixed crop for every method, so
LiDAR compares encoders on the same views.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ssl_bench import validate as v
from ssl_bench.evaluation import EvalContext, Evaluation, Protocol
from ssl_bench.evalkit.finetune import positive_int
from ssl_bench.evalkit.quality import DELTA, EPS, alpha_req, lidar, rankme
from ssl_bench.metrics import Metric, register_metric
from ssl_bench.registry import register_evaluation

WHERE = "evaluation quality: params"
QUALITY_METRICS = ("rankme", "lidar", "alpha_req")
for _m in (Metric("rankme", "RankMe", "RankMe", 60, "RankMe, the smooth rank of the features (Garrido et al. 2023)"),
           Metric("lidar", "LiDAR", "LiDAR", 61, "LiDAR, the smooth rank of the LDA matrix of augmented views "
                                                  "(Thilak et al. 2024)"),
           Metric("alpha_req", "alpha-ReQ", "alpha", 62, "alpha-ReQ, the eigenspectrum decay of the features "
                                                          "(Agrawal et al. 2022)")):
    register_metric(_m)


@register_evaluation("quality")
class QualityEvaluation(Evaluation):
    """RankMe, LiDAR and alpha-ReQ of the frozen encoder's pooled features (no labels)."""

    name = "quality"
    protocols = (Protocol("quality", "Label-free quality", 70, QUALITY_METRICS, table="quality",
                          recipe_fields=("split", "n_images", "lidar_images", "lidar_views", "lidar_view", "eps",
                                         "delta")),)
    defaults = {"dataset": None, "split": "test", "lidar_images": 1000, "lidar_views": 8, "eps": EPS,
                "delta": DELTA}

    def __init__(self, **params: Any):
        super().__init__(**params)
        p = self.params
        p["split"] = v.as_str(p["split"], f"{WHERE}.split", ("train", "val", "test"))
        p["lidar_images"] = positive_int(p["lidar_images"], f"{WHERE}.lidar_images")
        p["lidar_views"] = positive_int(p["lidar_views"], f"{WHERE}.lidar_views")
        if p["lidar_views"] < 2 or p["lidar_images"] < 2:
            raise v.fail(f"{WHERE}.lidar_views" if p["lidar_views"] < 2 else f"{WHERE}.lidar_images",
                         min(p["lidar_views"], p["lidar_images"]), "an integer >= 2 (LiDAR needs 2 views of 2 images)")
        p["eps"] = v.as_float(p["eps"], f"{WHERE}.eps", lo=0)
        p["delta"] = v.as_float(p["delta"], f"{WHERE}.delta", lo=0)
        if p["delta"] == 0:
            raise v.fail(f"{WHERE}.delta", 0, "a number > 0 (the within-class covariance must be invertible)")

    def recipe(self, run: dict[str, Any]) -> dict[str, Any]:
        p = self.params
        return {"split": p["split"], "n_images": "all", "lidar_images": p["lidar_images"],
                "lidar_views": p["lidar_views"], "lidar_view": "crop (0.08, 1) + flip", "eps": p["eps"],
                "delta": p["delta"]}

    def evaluate(self, ctx: EvalContext) -> list[dict[str, Any]]:
        p = self.params
        name = p["dataset"] or ctx.pretrain.name
        feats, _ = ctx.features(name, p["split"])
        sub = f"{p['split']}/{p['lidar_images']}"
        views = torch.stack([ctx.features(name, sub, view=f"crop{i}")[0] for i in range(p["lidar_views"])])
        values = {"rankme": rankme(feats, p["eps"]), "lidar": lidar(views, p["delta"], p["eps"]),
                  "alpha_req": alpha_req(feats)}
        extra = {"n_images": len(feats), "feature_dim": int(feats.shape[1]), "lidar_images": int(views.shape[1]),
                 "lidar_views": int(views.shape[0])}
        if math.isnan(values["alpha_req"]):  # fewer than two non-zero eigenvalues: no decay to fit
            del values["alpha_req"]
            extra["alpha_req_note"] = "fewer than two non-zero covariance eigenvalues: no slope"
        return [{"protocol": "quality", "eval_dataset": name, "metric": m, "value": val, "extra": dict(extra)}
                for m, val in values.items()]
