"""Barlow Twins' redundancy-reduction loss [BTp eq. 1, BT main.py L204-220] on the global batch."""
from __future__ import annotations

import torch


def batch_standardize(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each column over the batch to mean 0 and variance 1 (biased variance, BN's eps): BatchNorm1d without
    affine in training mode, the official `self.bn` [BT main.py L205]."""
    mean = z.mean(dim=0)
    var = z.var(dim=0, unbiased=False)
    return (z - mean) / torch.sqrt(var + eps)


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(D, D) cross-correlation of the batch-standardized embeddings of the two views: C = z1n^T z2n / N."""
    return batch_standardize(z1, eps).T @ batch_standardize(z2, eps) / z1.shape[0]


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float, eps: float = 1e-5) -> torch.Tensor:
    """sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2 [BTp eq. 1].

    z1, z2: (N, D) projections of the two views of the same N images in the same order, over the GLOBAL batch
    (gathered with gradients under DDP: the standardization and C are the whole batch's, as the official
    SyncBatchNorm + all_reduce of C make them).
    """
    c = cross_correlation(z1, z2, eps)
    diag = torch.diagonal(c)
    on_diag = (diag - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - diag.pow(2).sum()
    return on_diag + lambd * off_diag
