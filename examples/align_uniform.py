"""Alignment and uniformity on the hypersphere (Wang and Isola, arXiv 2005.10242) as a user's own method plugin.

This file is not part of the ssl-bench package: a suite beside it loads it with `plugins: [align_uniform]` (or
`align_uniform.py`; imported by its path, the suite's folder never goes on sys.path), and `ssl-bench list
methods` then shows it beside the built-in ones. It imports only ssl-bench's plugin-facing modules.

Algorithm box:
  network = encoder -> projector -> l2-normalize         (one network, no target, no EMA)
  for each batch of N images: two views v1, v2
      z1, z2  = normalize(projector(encoder(v)))
      align   = mean_i ||z1_i - z2_i||^alpha                                    (alpha = 2)
      uniform = log mean_{i < j} exp(-t ||z_i - z_j||^2), per view, averaged    (t = 2)
      loss    = align + lambda * uniform
Each process uses its own batch (nothing gathered): this example keeps to one file and the public hooks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.heads import Block, MLPHead
from ssl_bench.method import Method
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM, POSITIVE, Range

# Crop + flip + grey-level jitter: the views are plain ViewRecipe fields (see `ssl-bench validate` for the keys).
VIEW = {"crop_scale": [0.2, 1.0], "interpolation": "bilinear", "flip_p": 0.5, "jitter_p": 0.8, "brightness": 0.4,
        "contrast": 0.4, "saturation": 0.4, "hue": 0.1, "brightness_mode": "multiplicative", "grayscale_p": 0.2,
        "blur_p": 0.0, "solarize_p": 0.0}


def align_loss(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Mean over pairs of the alpha-th power of the distance between the two views' normalized embeddings."""
    return (z1 - z2).norm(dim=1).pow(alpha).mean()


def uniform_loss(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """log of the mean Gaussian potential exp(-t d^2) over the N(N-1)/2 distinct pairs of rows."""
    n = z.shape[0]
    sq = torch.cdist(z, z).pow(2)
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=z.device), diagonal=1)
    return torch.logsumexp(-t * sq[upper], dim=0) - math.log(n * (n - 1) / 2)


def align_uniform_loss(z1: torch.Tensor, z2: torch.Tensor, lam: float, alpha: float = 2.0,
                       t: float = 2.0) -> torch.Tensor:
    """align + lambda * (uniform(z1) + uniform(z2)) / 2 on l2-normalized embeddings."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    return align_loss(z1, z2, alpha) + lam * (uniform_loss(z1, t) + uniform_loss(z2, t)) / 2


@register_method("align_uniform")
class AlignUniform(Method):
    """Alignment + uniformity on the hypersphere (example plugin file)."""

    defaults = {"proj_dims": [512, 128], "lam": 1.0, "alpha": 2.0, "t": 2.0}  # the paper's alpha = 2, t = 2
    param_ranges = {"proj_dims": DIM, "lam": Range(0), "alpha": POSITIVE, "t": POSITIVE}  # a list: each width
    optim = {"optimizer": "sgd", "base_lr": 0.3, "weight_decay": 1e-4, "warmup_epochs": 2}
    augmentation = {"views": [VIEW, VIEW]}

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params):
        super().__init__(backbone, num_classes, **params)
        dims = [backbone.num_features, *self.hparams["proj_dims"]]
        last = len(dims) - 2  # hidden blocks Linear-BN-ReLU, a plain last Linear
        self.projector = MLPHead([Block(dims[i], dims[i + 1], batch_norm=i < last, relu=i < last)
                                  for i in range(last + 1)])

    def training_step(self, views, labels=None):
        z1, z2 = (self.projector(self.backbone(v)) for v in views[:2])
        hp = self.hparams
        return {"loss": align_uniform_loss(z1, z2, hp["lam"], hp["alpha"], hp["t"])}
