"""Names shared by result records, published rows, tables and plots, read from where each is declared:

- a protocol on the evaluation that writes it (`Evaluation.protocols`: label, order, metrics, preset table);
- a dataset where it is registered (`register_dataset(..., label=, metric=, order=)` or `declare_dataset`);
- a metric in ssl_bench.metrics (`Metric`: label, short mark, order).

Nothing here keeps a list of its own: a new protocol or dataset is one file. Names nobody declared (a record
from a plugin that declares nothing) are shown as they are, after the declared ones.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from ssl_bench.evaluation import Protocol
from ssl_bench import metrics as declared_metrics
from ssl_bench.metrics import Metric
from ssl_bench.registry import DATASET_INFO, EVALUATIONS, DatasetInfo

FIELD_LABEL = {"method": "Method", "backbone": "Backbone", "pretrain_dataset": "Pretrain data", "epochs": "Epochs",
               "protocol": "Protocol", "eval_dataset": "Eval data", "metric": "Metric",
               "label_fraction": "Labels", "seed": "Seed", "target": "Target", "batch_size": "Batch"}
DATASET_FIELDS = ("eval_dataset", "pretrain_dataset", "target")

# The setting of a result: every field that says what was measured (seed excluded: we aggregate over it).
SETTING_FIELDS = ("method", "backbone", "pretrain_dataset", "epochs", "protocol", "eval_dataset", "metric",
                  "label_fraction")


def protocols() -> dict[str, Protocol]:
    """Every protocol the registered evaluations declare, by name."""
    out: dict[str, Protocol] = {}
    for name, cls in EVALUATIONS.items():
        for p in getattr(cls, "protocols", ()):
            if out.setdefault(p.name, p) != p:
                raise ValueError(f"evaluation {name}: protocol '{p.name}' is declared twice, differently")
    return out


def protocol(name: Any) -> Protocol | None:
    return protocols().get(name) if isinstance(name, str) else None


def datasets() -> dict[str, DatasetInfo]:
    """Every declared dataset (with a loader or named by published rows only), by name."""
    return dict(DATASET_INFO.items())


def dataset(name: Any) -> DatasetInfo | None:
    return datasets().get(name) if isinstance(name, str) else None


def metrics() -> dict[str, Metric]:
    return dict(declared_metrics.METRICS.items())


def metric(name: Any) -> Metric | None:
    return metrics().get(name) if isinstance(name, str) else None


def protocol_table(name: Any) -> str:
    """The preset table that shows a protocol ("" for Other evaluations, and for undeclared names)."""
    p = protocol(name)
    return p.table if p is not None else ""


def protocols_of_table(table: str) -> list[str]:
    return [p.name for p in sorted(protocols().values(), key=lambda p: p.order) if p.table == table]


def headline_metric(name: Any) -> str | None:
    """A dataset's own metric (BYOL Table 3), None when the dataset declares none."""
    info = dataset(name)
    return info.metric if info is not None else None


def dataset_label(name: Any, metric_name: Any = None) -> str:
    """A dataset's display name, with its metric's short mark when `metric_name` is given and has one."""
    info = dataset(name)
    label = info.display if info is not None else str(name)
    m = metric(metric_name)
    short = m.short if m is not None else ("" if metric_name is None else str(metric_name))
    return f"{label} ({short})" if short else label


def is_missing(v: Any) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def fraction_label(v: Any) -> str:
    return f"{float(v) * 100:g}%"


def value_label(field: str, v: Any) -> str:
    """Human label of one key value in a table header or row."""
    if is_missing(v):
        return ""
    if field == "metric":
        m = metric(v)
        return m.label if m is not None else str(v)
    if field == "label_fraction":
        return fraction_label(v)
    if field in DATASET_FIELDS:
        return dataset_label(v)
    if field == "protocol":
        p = protocol(v)
        return p.label if p is not None else str(v)
    if field == "epochs":
        return f"{int(v)} ep"
    return str(v)


def _declared_order(field: str, v: Any) -> float | None:
    info: Any = None
    if field == "protocol":
        info = protocol(v)
    elif field == "metric":
        info = metric(v)
    elif field in DATASET_FIELDS:
        info = dataset(v)
    return None if info is None else info.order


def sort_key(field: str, v: Any, first_seen: dict[Any, int]) -> tuple:
    """Order of values along a table axis: the declared order for declared names, then numbers, then the order
    of first appearance."""
    if is_missing(v):
        return (0, 0, "")
    order = _declared_order(field, v)
    if order is not None:
        return (1, float(order), "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (2, float(v), "")
    return (3, first_seen.get(v, len(first_seen)), str(v))
