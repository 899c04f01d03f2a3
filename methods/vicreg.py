"""VICReg: Variance-Invariance-Covariance Regularization (Bardes, Ponce and LeCun, arXiv 2105.04906).

Algorithm box [VRp Alg. 1]:
  network = encoder -> expander                        (one network for both views: no target, no EMA)
  for each batch: two views v1, v2
      z1, z2 = expander(encoder(v))                     (n, D) on each process
      inv    = MSE(z1, z2)                              this process's rows
      Z1, Z2 = gather(z1), gather(z2)                   the global batch, with gradients
      var    = mean_j relu(1 - sqrt(Var(Z_j) + 1e-4)), averaged over the two views
      cov    = sum_{i != j} Cov(Z)_ij^2 / D, summed over the two views
      loss   = 25 * inv + 25 * var + 1 * cov
  optimizer: LARS, biases and BN parameters excluded from decay and adaptation

Departures: the lr decays to 0 (official: to 1/1000 of the peak [VR main_vicreg.py L177]).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ssl_bench.distributed import gather_with_grad
from ssl_bench.heads import VICRegExpander
from ssl_bench.method import Method
from ssl_bench.presets import Preset
from ssl_bench.registry import register_method
from ssl_bench.validate import WIDTHS, Range

from ssl_bench.methods.losses import vicreg_loss
from ssl_bench.methods.views import VICREG_VIEW_1, VICREG_VIEW_2


@register_method("vicreg")
class VICReg(Method):
    """VICReg: invariance of the two views plus variance and covariance terms over the global batch."""

    defaults = {
        "proj_dims": [8192, 8192, 8192],  # --mlp 8192-8192-8192 [VR main_vicreg.py L44, L223-232]
        "sim_coeff": 25.0,  # [VR main_vicreg.py L58-63]
        "std_coeff": 25.0,
        "cov_coeff": 1.0,
    }
    param_ranges = {"proj_dims": WIDTHS, "sim_coeff": Range(0), "std_coeff": Range(0), "cov_coeff": Range(0)}
    # [VR main_vicreg.py]: LARS (eta 1e-3, momentum 0.9), ndim-1 parameters excluded (L109-115, L235-236),
    # base lr 0.2 * B/256 (L52, L170), wd 1e-6 (L54), 10 warmup epochs then cosine (L167-181).
    optim = {"optimizer": "lars", "base_lr": 0.2, "weight_decay": 1e-6, "momentum": 0.9, "warmup_epochs": 10,
             "lars_eta": 1e-3, "exclude_bias_and_norm": True}
    augmentation = {"views": [VICREG_VIEW_1, VICREG_VIEW_2]}
    # [VR README]: 1000 epochs at batch 2048, base lr 0.2 (the 73.2 ResNet-50); 100 epochs at batch 512, 0.3
    presets = {
        "vicreg-1000ep": Preset(2048, "VR README (run_with_submitit.py command)", 1000, optim={"base_lr": 0.2}),
        "vicreg-100ep": Preset(512, "VR README (single-node command)", 100, optim={"base_lr": 0.3}),
    }

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__(backbone, num_classes, **params)
        self.projector = VICRegExpander(backbone.num_features, list(self.hparams["proj_dims"]))

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        z1 = self.projector(self.backbone(views[0]))
        z2 = self.projector(self.backbone(views[1]))
        hp = self.hparams
        loss = vicreg_loss(z1, z2, gather_with_grad(z1), gather_with_grad(z2),
                           hp["sim_coeff"], hp["std_coeff"], hp["cov_coeff"])
        return {"loss": loss}
