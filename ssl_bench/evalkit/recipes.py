"""The terms evaluation recipes are stated in, shared by the evaluations that train heads or read the kNN monitor.

A recipe is what a published number and ours must share for a delta to mean anything (the parameters that change
the number: optimizer, epochs, lr grid, batch, what it trains on and selects with, crops, k, split, ...). Each
protocol declares its fields (`Protocol.recipe_fields`), each evaluation returns them (`Evaluation.recipe`), and
each published row states them in the same terms (results/published/README.md). Learning rates are stated per
256 images (`lrs_per_256`), whatever convention a suite lists them in: a grid listed as absolute lrs at batch
1024 is a per-256 grid 4x smaller, so the two readings of one paper grid never look alike.
"""
from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

from ssl_bench import validate as v
from ssl_bench.data.augment_recipe import CROP_SAMPLERS

SGD_HEAD = "sgd_nesterov"  # evalkit.finetune.train_classifier: SGD, Nesterov momentum 0.9, per-step cosine
CROP_FIELDS = ("crop_scale", "flip_p", "crop_sampler")
# linear_sgd [BYOL App. C.1]: which head, how long, which lrs, what it trains on and how one lr is chosen
LINEAR_SGD_FIELDS = ("optimizer", "weight_decay", "schedule", "epochs", "batch_size", "lrs_per_256", "select",
                     "train_on") + CROP_FIELDS
SEMI_FIELDS = ("optimizer", "weight_decay", "schedule", "epochs", "batch_size", "lrs_per_256", "select",
               "subset") + CROP_FIELDS
FINETUNE_FIELDS = ("optimizer", "schedule", "budget", "batch_size", "lrs_per_256", "weight_decays", "select",
                   "train_on") + CROP_FIELDS
# the cached L-BFGS probe (linear, transfer_linear) [Kornblith et al.; BYOL App. C.3]
LBFGS_FIELDS = ("classifier", "features", "standardize", "num_l2", "l2_range", "select", "train_on")
KNN_FIELDS = ("k", "temperature", "bank", "split", "n_eval", "epoch")
KNN_MAX_FIELDS = KNN_FIELDS + ("every",)
# attentive_probe [V-JEPA's AttentiveClassifier on cached tokens]: the head, its optimizer, grid and selection
ATTENTIVE_FIELDS = ("head", "optimizer", "weight_decay", "schedule", "epochs", "batch_size", "lrs_per_256",
                    "select", "train_on", "features")
ONLINE_FIELDS = ("optimizer", "classifier_lr_per_256", "weight_decay", "schedule", "views", "split")


def lrs_per_256(lrs: Sequence[float], batch_size: int, scaled: bool) -> list[float]:
    """The lrs as per-256 values: as listed with `lr_batch_scaling: true`, else lr * 256 / batch_size."""
    return [float(lr) if scaled else float(lr) * 256 / batch_size for lr in lrs]


def selection(n_candidates: int) -> str:
    """How the reported model was chosen: on the val split among several, or "none" (one candidate)."""
    return "val" if n_candidates > 1 else "none"


def crop_terms(params: dict[str, Any]) -> dict[str, Any]:
    return {"crop_scale": list(params["crop_scale"]), "flip_p": float(params["flip_p"]),
            "crop_sampler": params["crop_sampler"]}


def check_crop_sampler(value: Any, field: str) -> str:
    """A training-crop sampler of ssl_bench.data.augment_recipe (torchvision's, or DeepMind's clamped draw)."""
    return v.as_str(value, field, CROP_SAMPLERS)


def subset_identity(path: str | None, seed: int) -> str:
    """Which labelled images: a subset file by the sha256 of its (decompressed) bytes, first 12 hex digits
    (SimCLR's 1percent.txt: 71e82a48ba78), or the seeded class-balanced draw."""
    if not path:
        return f"balanced seed {seed}"
    p = Path(os.path.expanduser(path))
    data = p.read_bytes()
    if p.suffix == ".gz":
        data = gzip.decompress(data)
    return f"file sha256 {hashlib.sha256(data).hexdigest()[:12]}"
