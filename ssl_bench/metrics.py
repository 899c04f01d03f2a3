"""Classification metrics as pure functions of tensors; every one returns a percentage 0-100.

Each metric a record may carry is declared once, in the metric registry (`Metric`: table label, short mark,
order, and how to compute it from scores and labels); tables, plots, published rows and the probes' model
selection read these declarations. A plugin adds a metric in its own file with the decorator

    @register_metric("top3", label="Top-3", order=25)
    def top3(scores, labels): ...   # N x C scores, N labels -> a percentage, higher is better

(or `register_metric(Metric(...))` for a metric that is only declared); a dataset registered with
`metric="top3"` then has its probes select on it (the highest value wins) and its rows report it.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from ssl_bench.errors import UserError
from ssl_bench.registry import METRICS

MetricFn = Callable[[torch.Tensor, torch.Tensor], float]  # (N x C scores, labels) -> a percentage


@dataclass(frozen=True)
class Metric:
    name: str  # the record's `metric` value
    label: str  # table header, e.g. "Top-1"
    short: str  # mark beside a dataset name where it is that dataset's own metric ("" for plain top-1)
    order: float  # place along a table axis
    about: str = ""  # one phrase for table notes
    compute: MetricFn | None = None  # None: declared only (records may carry it; no probe can select on it)
    multilabel: bool = False  # compute takes N x K {1, 0, -1} targets (map11), not N class indices

    def __post_init__(self) -> None:  # what `ssl-bench list metrics` shows, like a plugin class's docstring
        object.__setattr__(self, "__doc__", self.about or self.label)


def register_metric(metric: Metric | str | None = None, *, label: str | None = None, short: str = "",
                    order: float = 100, about: str = "", multilabel: bool = False) -> "Metric | Callable[[MetricFn], MetricFn]":
    """`register_metric(Metric(...))` declares a metric; `@register_metric(name, label=, ...)` on a function
    fn(scores, labels) -> percentage declares it and lets probes select on it (name: the function's name)."""
    if isinstance(metric, Metric):
        return METRICS.register(override=True)(metric)  # idempotent: a plugin file may be imported twice

    def deco(fn: MetricFn) -> MetricFn:
        key = metric or fn.__name__
        doc = (fn.__doc__ or "").strip().splitlines()
        METRICS.register(override=True)(Metric(key, label or key, short, order, about or (doc[0] if doc else ""),
                                               fn, multilabel))
        return fn

    return deco


def metric_function(name: str, where: str | None = None) -> MetricFn:
    """The compute function of a registered metric (an unknown name, or one only declared, is a UserError)."""
    m = METRICS.get(name, where)
    if m.compute is None:
        computable = ", ".join(n for n, x in METRICS.items() if x.compute is not None)
        raise UserError(f"{where + ': ' if where else ''}metric '{name}' is declared without a compute function; "
                        f"allowed: {computable}")
    return m.compute


def selection_metric(dataset_metric: str) -> str:
    """What a probe selects its hyperparameters on for a dataset whose own metric is `dataset_metric`: that
    metric when it is computable on class labels, else top-1 (multi-label targets always select on map11)."""
    m = dict(METRICS.items()).get(dataset_metric)
    return dataset_metric if m is not None and m.compute is not None and not m.multilabel else "top1"


# What classification_metrics below may write: an evaluation built on it declares these for its protocols.
CLASSIFICATION_METRICS = ("top1", "top5", "mean_per_class", "map11")


def topk_accuracy(logits_or_scores: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Share of rows whose true label is among the k highest scores (N x C scores, N int labels)."""
    return _percent(topk_hits(logits_or_scores, labels, k))


def topk_hits(scores: torch.Tensor, labels: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Per row: is the true label among the k highest scores (N bools; topk_accuracy is their share in %)."""
    if scores.dim() != 2 or labels.dim() != 1 or len(labels) != len(scores):
        raise ValueError("topk_accuracy expects N x C scores and N integer labels")
    n, c = scores.shape
    if not 1 <= k <= c:
        raise ValueError(f"topk_accuracy: k={k} must be between 1 and the number of classes {c}")
    if n == 0:
        raise ValueError("topk_accuracy: no samples")
    top = scores.topk(k, dim=1).indices
    return (top == labels.to(top.device).view(-1, 1)).any(dim=1)


def _percent(hits: torch.Tensor) -> float:
    return 100.0 * hits.double().mean().item()


def mean_per_class_accuracy(pred: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> float:
    """Mean over the classes present in `labels` of per-class recall (Aircraft, Pets, Caltech, Flowers)."""
    if pred.shape != labels.shape or labels.dim() != 1:
        raise ValueError("mean_per_class_accuracy expects two N integer tensors")
    if len(labels) == 0:
        raise ValueError("mean_per_class_accuracy: no samples")
    labels = labels.long()
    size = max(int(labels.max()) + 1, int(pred.max()) + 1, num_classes or 0)
    total = torch.bincount(labels, minlength=size)
    correct = torch.bincount(labels[pred.to(labels.device).long() == labels], minlength=size)
    present = total > 0
    recall = correct[present].double() / total[present].double()
    return 100.0 * recall.mean().item()


def map11(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over classes of the VOC2007 11-point interpolated average precision.

    AP_c = mean over r in {0, 0.1, ..., 1} of max{precision at ranks whose recall >= r} (0 if none),
    as in the PASCAL VOC 2007 devkit. Ranking is by descending score, ties kept in input order.
    Targets are 1 (present), 0 (absent) or -1 ("difficult" only): a -1 counts neither as a hit nor as a false
    positive, as the devkit's VOCevalcls (`tp = gt > 0; fp = gt < 0`, its gt being 1 / -1 / 0 for present /
    absent / difficult) ignores difficult images.
    Classes without any positive target are skipped (their AP is undefined).
    """
    if scores.shape != targets.shape or scores.dim() != 2:
        raise ValueError("map11 expects N x K scores and N x K {1, 0, -1} targets")
    if scores.shape[0] == 0:
        raise ValueError("map11: no samples")
    order = scores.double().argsort(dim=0, descending=True, stable=True)
    ranked = targets.to(scores.device).double().gather(0, order)  # N x K, ranked per class
    hits = (ranked > 0).double()
    tp = hits.cumsum(dim=0)
    rank = (ranked >= 0).double().cumsum(dim=0)  # tp + fp: difficult entries are skipped
    npos = tp[-1]
    keep = npos > 0
    if not bool(keep.any()):
        raise ValueError("map11: no class has a positive target")
    precision = torch.where(rank > 0, tp / rank.clamp(min=1), 0.0)[:, keep]
    recall = (tp / npos.clamp(min=1))[:, keep]
    # Interpolated precision: the best precision at this rank or any later (higher-recall) one.
    envelope = precision.flip(0).cummax(dim=0).values.flip(0)
    levels = torch.linspace(0, 1, 11, dtype=torch.float64, device=hits.device)
    levels = levels.expand(recall.shape[1], 11).contiguous()
    # Recall is non-decreasing down the ranking, so the first rank reaching level r is a sorted search.
    # The small slack makes recall 3/10 count as reaching level 0.3 despite float rounding.
    first = torch.searchsorted(recall.T.contiguous(), levels - 1e-12)  # K x 11
    reached = first < len(hits)
    env_t = envelope.T  # K x N
    picked = env_t.gather(1, first.clamp(max=len(hits) - 1))
    ap = torch.where(reached, picked, torch.zeros_like(picked)).mean(dim=1)
    return 100.0 * ap.mean().item()


def classification_metrics(scores: torch.Tensor, labels: torch.Tensor, dataset_metric: str = "top1") -> dict[str, float]:
    """The numbers an evaluation reports for one test split, keyed by the record's metric name.

    Single-label: top1, top5 when there are more than 5 classes, and the dataset's own metric (mean_per_class,
    or a registered plugin metric). Multi-label (N x K {1, 0, -1} labels): map11 only. Inside `collect_evidence()` the
    per-image evidence of these numbers is kept as well (see there).
    """
    if labels.dim() == 2:
        out = {"map11": map11(scores, labels)}
        arrays = {"scores": scores, "labels": labels}
    else:
        hits = {"top1": topk_hits(scores, labels, 1)}
        if scores.shape[1] > 5:
            hits["top5"] = topk_hits(scores, labels, 5)
        out = {m: _percent(h) for m, h in hits.items()}
        arrays = {"labels": labels, **hits}
        if dataset_metric == "mean_per_class":
            pred = scores.argmax(dim=1)
            out["mean_per_class"] = mean_per_class_accuracy(pred, labels, scores.shape[1])
            arrays["pred"] = pred
        elif dataset_metric not in CLASSIFICATION_METRICS and selection_metric(dataset_metric) == dataset_metric:
            # a plugin's metric, the dataset's own: reported beside top-1 (no per-image evidence, so no bootstrap)
            out[dataset_metric] = float(metric_function(dataset_metric)(scores, labels))
    sink = _EVIDENCE.get()
    if sink is not None:
        sink.append(Evidence(out, {k: _compact(k, v) for k, v in arrays.items()}))
    return out


# --- per-image evidence: what a bootstrap over the test images needs (ssl_bench.report.stats, ssl_bench.evalkit.evidence) -------

@dataclass(frozen=True)
class Evidence:
    """One classification_metrics call: the dict it returned (its float objects are the rows' values, which is
    how ssl_bench.evalkit.evidence finds the rows they belong to) and per-image arrays from which ssl_bench.report.stats
    recomputes each value exactly: labels; top1 / top5 hits (bools); pred (argmax) for mean_per_class;
    scores and {1, 0, -1} labels for map11."""

    values: dict[str, float]
    arrays: dict[str, np.ndarray]


_EVIDENCE: ContextVar[list[Evidence] | None] = ContextVar("ssl_bench_evidence", default=None)


@contextmanager
def collect_evidence(enabled: bool = True) -> Iterator[list[Evidence]]:
    """Within the block, every classification_metrics call appends its Evidence to the yielded list (nothing is
    kept when not enabled, or outside such a block: the metrics then cost what they always did)."""
    calls: list[Evidence] = []
    token = _EVIDENCE.set(calls if enabled else None)
    try:
        yield calls
    finally:
        _EVIDENCE.reset(token)


def _compact(name: str, t: torch.Tensor) -> np.ndarray:
    """Smallest exact numpy form: bools stay bools; map11's scores float32, or float64 when they were (it ranks
    by them: no rounding that could reorder two images); labels / predictions the narrowest int holding them."""
    a = t.detach().cpu()
    if a.dtype == torch.bool:
        return a.numpy()
    if name == "scores":
        return a.numpy() if a.dtype == torch.float64 else a.float().numpy()
    a = a.long()  # float-typed multi-label targets are {1, 0, -1}
    lo, hi = (int(a.min()), int(a.max())) if a.numel() else (0, 0)
    for dtype in (np.int8, np.int16, np.int32):
        if np.iinfo(dtype).min <= lo and hi <= np.iinfo(dtype).max:
            return a.numpy().astype(dtype)
    return a.numpy()


# --- the built-in metrics -----------------------------------------------------------------------------------------

@register_metric("top1", label="Top-1", order=10, about="top-1 accuracy")
def _top1(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return topk_accuracy(scores, labels, 1)


@register_metric("top5", label="Top-5", short="top-5", order=20, about="top-5 accuracy")
def _top5(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return topk_accuracy(scores, labels, 5)


@register_metric("mean_per_class", label="Mean per-class", short="mpc", order=30, about="mean per-class accuracy")
def _mean_per_class(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return mean_per_class_accuracy(scores.argmax(dim=1), labels, scores.shape[1])


register_metric("map11", label="mAP (11-pt)", short="mAP", order=40, about="11-point mAP", multilabel=True)(map11)
