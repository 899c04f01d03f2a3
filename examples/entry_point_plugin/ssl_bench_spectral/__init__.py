"""Spectral contrastive loss (HaoChen et al., arXiv 2106.04156) registered through the `ssl_bench.plugins`
entry point of an installed package.

Algorithm box:
  network = encoder -> projector                        (one network, no target, no EMA)
  for each batch of N images: two views v1, v2
      z1, z2 = projector(encoder(v))
      loss   = -2 mean_i z1_i . z2_i + mean_{i != j} (z1_i . z2_j)^2
Each process uses its own batch (nothing gathered).
"""
from __future__ import annotations

import torch
from torch import nn

from ssl_bench.heads import Block, MLPHead
from ssl_bench.method import Method
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM

VIEW = {"crop_scale": [0.2, 1.0], "flip_p": 0.5, "jitter_p": 0.8, "grayscale_p": 0.2, "blur_p": 0.0,
        "solarize_p": 0.0}


def spectral_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Positive pairs pulled together (-2 z1_i . z2_i), other pairs' squared inner products pushed to 0."""
    n = z1.shape[0]
    dots = z1 @ z2.T
    positive = torch.diagonal(dots).mean()
    off = (dots.pow(2).sum() - torch.diagonal(dots).pow(2).sum()) / (n * (n - 1))
    return -2 * positive + off


@register_method("spectral_contrastive")
class SpectralContrastive(Method):
    """Spectral contrastive loss (example entry-point plugin)."""

    defaults = {"proj_hidden_dim": 512, "proj_dim": 128}
    param_ranges = {"proj_hidden_dim": DIM, "proj_dim": DIM}
    optim = {"optimizer": "sgd", "base_lr": 0.05, "weight_decay": 1e-4, "warmup_epochs": 2}
    augmentation = {"views": [VIEW, VIEW]}

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params):
        super().__init__(backbone, num_classes, **params)
        d, h, p = backbone.num_features, self.hparams["proj_hidden_dim"], self.hparams["proj_dim"]
        self.projector = MLPHead([Block(d, h, batch_norm=True, relu=True), Block(h, p)])

    def training_step(self, views, labels=None):
        z1, z2 = (self.projector(self.backbone(v)) for v in views[:2])
        return {"loss": spectral_contrastive_loss(z1, z2)}
