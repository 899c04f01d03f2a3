"""MoCo's InfoNCE: v2 against a queue of past keys [MoCo Alg. 1], v3 against the other view's keys in the batch
[M3 Alg. 1]."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def moco_v2_logits(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo logits [q.k+ | q.queue^T] / T with l2-normalized q and k; column 0 is the positive [MoCo Alg. 1].

    q: (N, d) queries; k: (N, d) keys of the other view (no gradient); queue: (K, d) normalized past keys.
    """
    q = F.normalize(q, dim=1)
    k = F.normalize(k.detach(), dim=1)
    pos = (q * k).sum(dim=1, keepdim=True)
    neg = q @ queue.detach().T
    return torch.cat([pos, neg], dim=1) / temperature


def moco_v2_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE with the positive key at index 0 and the queue as negatives, batch mean."""
    logits = moco_v2_logits(q, k, queue, temperature)
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def moco_v3_loss(q: torch.Tensor, k_all: torch.Tensor, temperature: float, rank: int = 0) -> torch.Tensor:
    """One direction of MoCo v3's loss: CE(q k_all^T / T, arange(N) + N * rank) * 2T [M3 Alg. 1, builder.py].

    q: (N, d) this process's predictions of one view; k_all: (W * N, d) momentum keys of the other view,
    gathered over processes without gradient (k itself on one process). The 2T factor keeps the gradient
    scale independent of the temperature. The method sums both directions.
    """
    n = q.shape[0]
    logits = F.normalize(q, dim=1) @ F.normalize(k_all.detach(), dim=1).T / temperature
    labels = torch.arange(n, device=q.device) + n * rank
    return F.cross_entropy(logits, labels) * (2 * temperature)
