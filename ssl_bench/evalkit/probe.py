"""L2-regularized logistic regression on cached features, fit with full-batch L-BFGS.

The cheap linear protocol of SimCLR/BYOL transfer (Kornblith et al. 2019): standardized features,
multinomial logistic regression, L2 strength swept over log-spaced values and chosen on the
validation split. The objective is

    mean_i loss_i + (l2 / 2) * ||W||^2        (bias unregularized)

with loss = softmax cross-entropy for int labels, or the sum over classes of binary cross-entropy
for N x K {0,1} labels (one-vs-rest, multi-label). It equals scikit-learn's LogisticRegression
objective divided by l2 * n when C = 1 / (l2 * n).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ssl_bench.metrics import map11, metric_function


def standardize(train_x: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Scale every feature to zero mean and unit variance using train statistics only."""
    mean = train_x.mean(dim=0)
    std = train_x.std(dim=0)
    std = torch.where(std > 1e-8 * std.max().clamp(min=1e-30), std, torch.ones_like(std))  # constant features
    return [(x - mean) / std for x in (train_x, *others)]


def logistic_objective(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor, l2: float) -> torch.Tensor:
    """Mean data loss plus (l2 / 2) ||W||^2; W is K x D, b is K."""
    logits = x @ w.T + b
    if y.dim() == 2:
        # multi-label targets 1 / 0, and -1 (VOC "difficult" only, ignored as by the devkit) left out
        data = F.binary_cross_entropy_with_logits(logits, (y > 0).to(logits.dtype), (y >= 0).to(logits.dtype),
                                                  reduction="sum") / len(x)
    else:
        data = F.cross_entropy(logits, y)
    return data + 0.5 * l2 * w.pow(2).sum()


def fit_logistic(
    x: torch.Tensor,
    y: torch.Tensor,
    l2: float,
    max_iter: int = 1000,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    num_classes: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimize `logistic_objective` from `init` (or zeros); returns (W K x D, b K) in x's dtype/device.

    K is num_classes, else init's, else the multi-label width or max label + 1.
    """
    if init is not None:
        k = init[0].shape[0]
    elif num_classes is not None:
        k = num_classes
    else:
        k = y.shape[1] if y.dim() == 2 else int(y.max()) + 1
    if init is None:
        w = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device)
        b = torch.zeros(k, dtype=x.dtype, device=x.device)
    else:
        w, b = (t.detach().to(dtype=x.dtype, device=x.device) for t in init)
    # Optimize v = w * sqrt(1 + l2): the W-block of the Hessian is about (0.25 + l2) I on standardized
    # features while the bias block stays below 0.25, so strong l2 would be badly conditioned for L-BFGS.
    scale = math.sqrt(1.0 + l2)
    v = (w * scale).clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    tol = 1e-9 if x.dtype == torch.float64 else 1e-6  # float32 cannot resolve finer changes
    opt = torch.optim.LBFGS([v, b], lr=1.0, max_iter=max_iter, max_eval=int(max_iter * 1.25),
                            tolerance_grad=tol * 0.1, tolerance_change=tol * 1e-3,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = logistic_objective(x, y, v / scale, b, l2)
        loss.backward()
        return loss

    opt.step(closure)
    return v.detach() / scale, b.detach()


def score(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Logits N x K of the fitted model."""
    return x @ w.T + b


def probe_metric(scores: torch.Tensor, y: torch.Tensor, metric: str = "top1") -> float:
    """The model-selection number: map11 for multi-label y, else the registered metric `metric` (top1,
    mean_per_class, or a plugin's: ssl_bench.metrics.register_metric)."""
    if y.dim() == 2:
        return map11(scores, y)
    return float(metric_function(metric, where="val_metric")(scores, y))


def l2_grid(low: float, high: float, num: int) -> list[float]:
    """`num` log-spaced values from low to high (45 in [1e-6, 1e5] in the SimCLR/BYOL transfer protocol)."""
    if num == 1:
        return [float(low)]
    step = (math.log10(high) - math.log10(low)) / (num - 1)
    return [10 ** (math.log10(low) + i * step) for i in range(num)]


def sweep_logistic(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    l2_values: Sequence[float],
    metric: str = "top1",
    max_iter: int = 1000,
    num_classes: int | None = None,
    on_fit: Callable[[], None] | None = None,
) -> tuple[float, list[float]]:
    """Fit on train for each l2 and score on val; returns (best l2, val scores in l2_values order).
    `on_fit()` runs after each fit (a progress bar).

    Fits run from strong to weak regularization, each warm-started from the previous solution.
    Ties on val go to the strongest regularization.
    """
    if len(l2_values) == 0:
        raise ValueError("sweep_logistic: no l2 values")
    order = sorted(range(len(l2_values)), key=lambda i: -l2_values[i])
    vals = [0.0] * len(l2_values)
    init = None
    best = None
    for i in order:
        init = fit_logistic(train_x, train_y, l2_values[i], max_iter=max_iter, init=init, num_classes=num_classes)
        vals[i] = probe_metric(score(val_x, *init), val_y, metric)
        if on_fit is not None:
            on_fit()
        if best is None or vals[i] > vals[best]:
            best = i
    return float(l2_values[best]), vals
