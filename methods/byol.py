"""BYOL: Bootstrap Your Own Latent (Grill et al., arXiv 2006.07733).

Algorithm box:
  online  = encoder -> projector -> predictor          (trained by the optimizer)
  target  = encoder' -> projector'                      (EMA of online, never trained)
  for each batch: two views v1, v2 of every image
      p1, p2 = predictor(projector(encoder(v)))         online, per view
      z1, z2 = projector'(encoder'(v))                  target, no gradient
      loss   = L(p1, sg(z2)) + L(p2, sg(z1)),  L = 2 - 2 cos
  after each optimizer step: target <- tau * target + (1 - tau) * online,
      tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ssl_bench.heads import BYOLHead
from ssl_bench.method import Method, cosine_momentum, set_requires_grad
from ssl_bench.presets import by_epochs
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM, UNIT

from ssl_bench.methods.losses import byol_loss
from ssl_bench.methods.views import BYOL_VIEW_1, BYOL_VIEW_2


@register_method("byol")
class BYOL(Method):
    """BYOL: an online network predicts an EMA target's projection of the other view; no negatives."""

    defaults = {
        "proj_hidden_dim": 4096,  # [BYOL 3.3]
        "proj_dim": 256,
        "pred_hidden_dim": 4096,
        "tau_base": 0.99,  # 100/300-epoch preset [DM configs/byol.py]; 0.996 for 1000 epochs
        "concat_target_views": False,  # one target forward over both views (changes BN batch statistics)
        # the projector's and predictor's last Linear: no bias [DM utils/networks.py:44]; true: solo-learn, lightly
        "head_last_bias": False,
    }
    param_ranges = {"proj_hidden_dim": DIM, "proj_dim": DIM, "pred_hidden_dim": DIM, "tau_base": UNIT}
    optim = {"optimizer": "lars", "base_lr": 0.45, "weight_decay": 1e-6, "warmup_epochs": 10}  # 100-epoch [DM]
    augmentation = {"views": [BYOL_VIEW_1, BYOL_VIEW_2]}  # [BYOL Table 6]: asymmetric blur and solarize
    # [DM configs/byol.py] _LR_PRESETS, _WD_PRESETS, _EMA_PRESETS by epochs, at batch 4096 (`preset: paper`)
    presets = by_epochs("byol", "DM configs/byol.py", 4096, {
        40: ({"tau_base": 0.97}, {"base_lr": 0.45, "weight_decay": 1e-6}),
        100: ({"tau_base": 0.99}, {"base_lr": 0.45, "weight_decay": 1e-6}),
        300: ({"tau_base": 0.99}, {"base_lr": 0.3, "weight_decay": 1e-6}),
        1000: ({"tau_base": 0.996}, {"base_lr": 0.2, "weight_decay": 1.5e-6})})

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params):
        super().__init__(backbone, num_classes, **params)
        hp, dim = self.hparams, backbone.num_features
        bias = bool(hp["head_last_bias"])
        self.projector = BYOLHead(dim, hp["proj_hidden_dim"], hp["proj_dim"], last_bias=bias)
        self.predictor = BYOLHead(hp["proj_dim"], hp["pred_hidden_dim"], hp["proj_dim"], last_bias=bias)
        self.target_backbone = copy.deepcopy(backbone)
        self.target_projector = copy.deepcopy(self.projector)
        set_requires_grad(self.target_backbone, False)
        set_requires_grad(self.target_projector, False)

    def _target(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        with torch.no_grad():
            if self.hparams["concat_target_views"]:
                z = self.target_projector(self.target_backbone(torch.cat(views)))
                return list(z.chunk(len(views)))
            return [self.target_projector(self.target_backbone(v)) for v in views]

    def training_step(self, views, labels=None):
        v1, v2 = views
        p1 = self.predictor(self.projector(self.backbone(v1)))
        p2 = self.predictor(self.projector(self.backbone(v2)))
        z1, z2 = self._target([v1, v2])
        return {"loss": byol_loss(p1, p2, z1, z2)}

    def momentum_pairs(self):
        return [(self.backbone, self.target_backbone), (self.projector, self.target_projector)]

    def momentum_at(self, step: int, total_steps: int) -> float:
        return cosine_momentum(self.hparams["tau_base"], step, total_steps)
