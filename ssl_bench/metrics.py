"""Classification metrics as pure functions of tensors; every one returns a percentage 0-100."""
from __future__ import annotations

import torch


def topk_accuracy(logits_or_scores: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Share of rows whose true label is among the k highest scores (N x C scores, N int labels)."""
    if logits_or_scores.dim() != 2 or labels.dim() != 1 or len(labels) != len(logits_or_scores):
        raise ValueError("topk_accuracy expects N x C scores and N integer labels")
    n, c = logits_or_scores.shape
    if not 1 <= k <= c:
        raise ValueError(f"topk_accuracy: k={k} must be between 1 and the number of classes {c}")
    if n == 0:
        raise ValueError("topk_accuracy: no samples")
    top = logits_or_scores.topk(k, dim=1).indices
    hit = (top == labels.to(top.device).view(-1, 1)).any(dim=1)
    return 100.0 * hit.double().mean().item()


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
    Classes without any positive target are skipped (their AP is undefined).
    """
    if scores.shape != targets.shape or scores.dim() != 2:
        raise ValueError("map11 expects N x K scores and N x K {0,1} targets")
    if scores.shape[0] == 0:
        raise ValueError("map11: no samples")
    order = scores.double().argsort(dim=0, descending=True, stable=True)
    hits = targets.to(scores.device).double().gather(0, order)  # N x K, ranked per class
    tp = hits.cumsum(dim=0)
    rank = torch.arange(1, len(hits) + 1, dtype=torch.float64, device=hits.device).view(-1, 1)
    npos = tp[-1]
    keep = npos > 0
    if not bool(keep.any()):
        raise ValueError("map11: no class has a positive target")
    precision = (tp / rank)[:, keep]
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

    Single-label: top1, top5 when there are more than 5 classes, and mean_per_class when that is the
    dataset's own metric. Multi-label (N x K {0,1} labels): map11 only.
    """
    if labels.dim() == 2:
        return {"map11": map11(scores, labels)}
    out = {"top1": topk_accuracy(scores, labels, 1)}
    if scores.shape[1] > 5:
        out["top5"] = topk_accuracy(scores, labels, 5)
    if dataset_metric == "mean_per_class":
        out["mean_per_class"] = mean_per_class_accuracy(scores.argmax(dim=1), labels, scores.shape[1])
    return out
