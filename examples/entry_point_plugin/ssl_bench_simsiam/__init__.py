"""SimSiam (Chen and He, arXiv 2011.10566) registered through the `ssl_bench.plugins` entry point.

Algorithm box:
  network = encoder -> projector -> predictor           (one network, no target, no EMA)
  for each batch: two views v1, v2
      z1, z2 = projector(encoder(v)),  p1, p2 = predictor(z)
      loss   = -(cos(p1, sg(z2)) + cos(p2, sg(z1))) / 2, batch mean; in [-1, 1]
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.heads import Block, MLPHead
from ssl_bench.method import Method
from ssl_bench.methods.views import MOCO_V2_VIEW
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Symmetrized negative cosine similarity with stop-gradient on the projections [paper eq. 3-4]."""
    sim = F.cosine_similarity(p1, z2.detach(), dim=-1) + F.cosine_similarity(p2, z1.detach(), dim=-1)
    return -sim.mean() / 2


@register_method("simsiam")
class SimSiam(Method):
    """SimSiam: BYOL without a momentum encoder (example entry-point plugin)."""

    defaults = {"proj_dim": 2048, "pred_hidden_dim": 512}  # [paper Sec. 4]
    param_ranges = {"proj_dim": DIM, "pred_hidden_dim": DIM}
    # [paper Sec. 4]: SGD lr 0.05 * B/256, wd 1e-4 on every parameter, no warmup, cosine.
    optim = {"optimizer": "sgd", "base_lr": 0.05, "weight_decay": 1e-4, "warmup_epochs": 0,
             "exclude_bias_and_norm": False}
    augmentation = {"views": [MOCO_V2_VIEW, MOCO_V2_VIEW]}  # the paper reuses MoCo v2's recipe

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params):
        super().__init__(backbone, num_classes, **params)
        d, h, p = backbone.num_features, self.hparams["proj_dim"], self.hparams["pred_hidden_dim"]
        # 3-layer projector ending in BN without affine; a bottleneck predictor
        self.projector = MLPHead([Block(d, h, batch_norm=True, relu=True, bias=False),
                                  Block(h, h, batch_norm=True, relu=True, bias=False),
                                  Block(h, h, batch_norm=True, bias=False, bn_affine=False)])
        self.predictor = MLPHead([Block(h, p, batch_norm=True, relu=True, bias=False), Block(p, h)])

    def training_step(self, views, labels=None):
        z1, z2 = self.projector(self.backbone(views[0])), self.projector(self.backbone(views[1]))
        return {"loss": simsiam_loss(self.predictor(z1), self.predictor(z2), z1, z2)}
