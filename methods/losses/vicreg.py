"""VICReg's variance-invariance-covariance loss [VRp eq. 1-6, VR main_vicreg.py L194-220]."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def invariance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between the two views' embeddings, over rows and dimensions (F.mse_loss)."""
    return F.mse_loss(z1, z2)


def variance_loss(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Hinge on each dimension's standard deviation over the batch: mean_j relu(1 - sqrt(Var(z_j) + eps)),
    with the unbiased variance [VR main_vicreg.py L205-207]."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1 - std).mean()


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal entries of the (D, D) covariance (divided by N - 1), divided by D."""
    n, d = z.shape
    zc = z - z.mean(dim=0)
    cov = zc.T @ zc / (n - 1)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, z1_all: torch.Tensor, z2_all: torch.Tensor,
                sim_coeff: float, std_coeff: float, cov_coeff: float) -> torch.Tensor:
    """sim * MSE(z1, z2) + std * (v(z1_all) + v(z2_all)) / 2 + cov * (c(z1_all) + c(z2_all)).

    z1, z2: (N, D) this process's expander outputs of the two views: the invariance term is a per-process mean
    (the official code computes it before gathering, L198). z1_all, z2_all: the same gathered over processes with
    gradients (FullGatherLayer, L200-201; z1, z2 themselves on one process): variance and covariance are the
    global batch's. The official code halves the variance sum but not the covariance sum (L207, L211-213).
    """
    inv = invariance_loss(z1, z2)
    var = (variance_loss(z1_all) + variance_loss(z2_all)) / 2
    cov = covariance_loss(z1_all) + covariance_loss(z2_all)
    return sim_coeff * inv + std_coeff * var + cov_coeff * cov
