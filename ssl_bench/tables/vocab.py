"""Names shared by result records, published rows and tables: protocols, metrics, datasets, their order and labels."""
from __future__ import annotations

from typing import Any

import pandas as pd

PROTOCOLS = ("knn", "linear", "linear_sgd", "semi_supervised", "transfer_linear", "transfer_finetune")
METRICS = ("top1", "top5", "mean_per_class", "map11")
# The 12 transfer datasets in the column order of BYOL Table 3, after the ImageNet / CIFAR pretraining sets.
DATASETS = ("imagenet", "cifar10", "cifar100", "food101", "birdsnap", "sun397", "stanford_cars", "fgvc_aircraft",
            "voc2007", "dtd", "oxford_iiit_pet", "caltech101", "flowers102")
TRANSFER_ORDER = ("food101", "cifar10", "cifar100", "birdsnap", "sun397", "stanford_cars", "fgvc_aircraft",
                  "voc2007", "dtd", "oxford_iiit_pet", "caltech101", "flowers102")

# Each transfer dataset's own metric [BYOL Sec. 4.2 / Table 3]: top-1 unless listed here.
DATASET_METRIC = {"fgvc_aircraft": "mean_per_class", "oxford_iiit_pet": "mean_per_class",
                  "caltech101": "mean_per_class", "flowers102": "mean_per_class", "voc2007": "map11"}

PROTOCOL_LABEL = {"knn": "kNN", "linear": "Linear", "linear_sgd": "Linear (SGD)",
                  "semi_supervised": "Semi-supervised", "transfer_linear": "Transfer, linear",
                  "transfer_finetune": "Transfer, fine-tuned"}
METRIC_LABEL = {"top1": "Top-1", "top5": "Top-5", "mean_per_class": "Mean per-class", "map11": "mAP (11-pt)"}
METRIC_SHORT = {"mean_per_class": "mpc", "map11": "mAP"}
DATASET_LABEL = {"imagenet": "ImageNet", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "food101": "Food101",
                 "birdsnap": "Birdsnap", "sun397": "SUN397", "stanford_cars": "Cars", "fgvc_aircraft": "Aircraft",
                 "voc2007": "VOC2007", "dtd": "DTD", "oxford_iiit_pet": "Pets", "caltech101": "Caltech-101",
                 "flowers102": "Flowers", "mnist5k": "MNIST-5k", "digits": "Digits", "fashion_mnist": "Fashion-MNIST",
                 "stl10": "STL-10"}
FIELD_LABEL = {"method": "Method", "backbone": "Backbone", "pretrain_dataset": "Pretrain data", "epochs": "Epochs",
               "protocol": "Protocol", "eval_dataset": "Eval data", "metric": "Metric",
               "label_fraction": "Labels", "seed": "Seed", "target": "Target"}

# The setting of a result: every field that says what was measured (seed excluded: we aggregate over it).
SETTING_FIELDS = ("method", "backbone", "pretrain_dataset", "epochs", "protocol", "eval_dataset", "metric",
                  "label_fraction")


def is_missing(v: Any) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def fraction_label(v: Any) -> str:
    return f"{float(v) * 100:g}%"


def value_label(field: str, v: Any) -> str:
    """Human label of one key value in a table header or row."""
    if is_missing(v):
        return ""
    if field == "metric":
        return METRIC_LABEL.get(v, str(v))
    if field == "label_fraction":
        return fraction_label(v)
    if field in ("eval_dataset", "pretrain_dataset", "target"):
        return DATASET_LABEL.get(v, str(v))
    if field == "protocol":
        return PROTOCOL_LABEL.get(v, str(v))
    if field == "epochs":
        return f"{int(v)} ep"
    return str(v)


def sort_key(field: str, v: Any, first_seen: dict[Any, int]) -> tuple:
    """Order of values along a table axis: paper order for known names, then order of first appearance."""
    if is_missing(v):
        return (0, 0, "")
    known = {"protocol": PROTOCOLS, "metric": METRICS, "eval_dataset": TRANSFER_ORDER, "target": TRANSFER_ORDER}
    if field in known and v in known[field]:
        return (1, known[field].index(v), "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (2, float(v), "")
    return (3, first_seen.get(v, len(first_seen)), str(v))
