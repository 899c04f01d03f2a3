"""Barlow Twins (Zbontar et al., arXiv 2103.03230) as a user's own ssl-bench method plugin.

This file is not part of the ssl-bench package: a suite beside it loads it with `plugins: [barlow_twins]` (or
`barlow_twins.py`; imported by its path, the suite's folder never goes on sys.path), and `ssl-bench list
methods` then shows it beside the built-in ones.

Algorithm box:
  network = encoder -> projector                       (one network, no target, no EMA)
  for each batch of N images: two views v1, v2
      z1, z2 = projector(encoder(v))                    gathered over processes (identity on one)
      c      = standardize(z1)^T standardize(z2) / N    cross-correlation of the batch-standardized outputs
      loss   = sum_i (1 - c_ii)^2 + lambda * sum_{i != j} c_ij^2
"""
from __future__ import annotations

import torch
from torch import nn

from ssl_bench.distributed import gather_with_grad
from ssl_bench.heads import Block, MLPHead
from ssl_bench.method import Method
from ssl_bench.methods.views import BYOL_VIEW_1, BYOL_VIEW_2
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM, Range


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float, eps: float = 1e-5) -> torch.Tensor:
    """Invariance (diagonal of c pulled to 1) plus lambda times redundancy reduction (off-diagonal to 0).

    z1, z2: (N, D) projections of the two views of the same N images, in the same order.
    Each dimension is standardized over the batch (BatchNorm without affine, biased variance) first.
    """
    n = z1.shape[0]

    def standardize(z: torch.Tensor) -> torch.Tensor:
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)

    c = standardize(z1).T @ standardize(z2) / n
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambd * off_diag


@register_method("barlow_twins")
class BarlowTwins(Method):
    """Barlow Twins: cross-correlation of two views pushed to the identity (example plugin)."""

    defaults = {
        "proj_dims": [8192, 8192, 8192],  # three linear layers, BN + ReLU between them [paper Sec. 2]
        "lambd": 0.0051,  # off-diagonal weight (the official code's default; the paper rounds it to 5e-3)
    }
    param_ranges = {"proj_dims": DIM, "lambd": Range(0)}  # checked by `ssl-bench validate`; a list: each width
    # [paper Sec. 2 / App.]: LARS, base lr 0.2 for weights, wd 1.5e-6, 10 warmup epochs, cosine.
    optim = {"optimizer": "lars", "base_lr": 0.2, "weight_decay": 1.5e-6, "warmup_epochs": 10}
    augmentation = {"views": [BYOL_VIEW_1, BYOL_VIEW_2]}  # the paper reuses BYOL's asymmetric recipe

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params):
        super().__init__(backbone, num_classes, **params)
        dims = [backbone.num_features, *self.hparams["proj_dims"]]
        last = len(dims) - 2
        # (in, out, batch_norm, relu, bias, bn_affine): hidden blocks Linear-BN-ReLU, a plain last Linear
        self.projector = MLPHead([Block(dims[i], dims[i + 1], batch_norm=i < last, relu=i < last, bias=False)
                                  for i in range(last + 1)])

    def training_step(self, views, labels=None):
        z1 = self.projector(self.backbone(views[0]))
        z2 = self.projector(self.backbone(views[1]))
        # Gathering with gradients makes c the global batch's cross-correlation under DDP too.
        return {"loss": barlow_twins_loss(gather_with_grad(z1), gather_with_grad(z2), self.hparams["lambd"])}
