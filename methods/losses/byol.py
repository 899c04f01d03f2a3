"""BYOL's regression loss [BYOL eq. 2], symmetrized over the two views."""
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
