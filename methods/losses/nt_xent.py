"""SimCLR's NT-Xent (normalized temperature-scaled cross entropy) over the global batch [SCp Alg. 1]."""
from __future__ import annotations

import torch
import torch.nn.functional as F


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
