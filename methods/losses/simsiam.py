"""SimSiam's symmetrized negative cosine similarity with stop-gradient [SSp eq. 1-4, SS main_simsiam.py L295]."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """-(mean cos(p1, sg(z2)) + mean cos(p2, sg(z1))) / 2, in [-1, 1].

    p1, p2: predictor outputs of views 1 and 2; z1, z2: projector outputs (detached here: the stop-gradient).
    A per-process batch mean: nothing is gathered, and DDP's gradient average makes it the global batch's mean.
    """
    sim = F.cosine_similarity(p1, z2.detach(), dim=-1).mean() + F.cosine_similarity(p2, z1.detach(), dim=-1).mean()
    return -sim / 2
