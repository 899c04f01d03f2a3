"""Losses as pure functions of tensors (solo-learn style), testable alone."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def byol_regression_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z) per sample [BYOL eq. 2]; z must already be detached (stop-gradient)."""
    return 2 - 2 * F.cosine_similarity(p, z, dim=-1)


def byol_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Symmetrized BYOL loss: L(q(z1), sg(z'2)) + L(q(z2), sg(z'1)), batch mean, in [0, 8].

    p1, p2: online predictions of views 1 and 2; z1, z2: target projections of views 1 and 2.
    """
    return (byol_regression_loss(p1, z2.detach()) + byol_regression_loss(p2, z1.detach())).mean()


def nt_xent_loss(z: torch.Tensor, z_all: torch.Tensor, temperature: float, rank: int = 0) -> torch.Tensor:
    """SimCLR's NT-Xent over this process's 2N anchors [SCp Alg. 1].

    z:     (2N, d) this process's projections, view-1 rows then view-2 rows (rows i and i + N are a pair).
    z_all: z gathered over processes in rank order, (W * 2N, d), through a gather that carries gradients;
           z itself on one process. Each anchor sees its positive and the 2(WN - 1) other rows as negatives.
    Returns the mean over anchors of -log(exp(s_ij / t) / sum_{k != i} exp(s_ik / t)), s = cosine similarity.
    """
    two_n = z.shape[0]
    if two_n % 2 or z_all.shape[0] % two_n:
        raise ValueError(f"nt_xent_loss: z has {two_n} rows and z_all {z_all.shape[0]}; need 2N and W * 2N")
    logits = F.normalize(z, dim=1) @ F.normalize(z_all, dim=1).T / temperature
    anchor = torch.arange(two_n, device=z.device)
    offset = rank * two_n  # this process's rows inside z_all
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[anchor, anchor + offset] = True
    logits = logits.masked_fill(is_self, float("-inf"))  # an anchor is never its own negative
    positive = (anchor + two_n // 2) % two_n + offset
    return F.cross_entropy(logits, positive)


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
