"""Barlow Twins: Self-Supervised Learning via Redundancy Reduction (Zbontar et al., arXiv 2103.03230).

Algorithm box [BTp Alg. 1]:
  network = encoder -> projector                       (one network for both views: no target, no EMA)
  for each batch of N images (N over all processes): two views v1, v2
      z1, z2 = projector(encoder(v))                    (N, D) each, gathered over processes with gradients
      z1n, z2n = standardize(z1), standardize(z2)       per dimension over the batch (BatchNorm, no affine)
      C      = z1n^T z2n / N                            (D, D) cross-correlation
      loss   = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2
  optimizer: LARS; biases and BN parameters learn at lr_biases / lr_weights of the weights' rate

Under DDP, C is the global batch's and its gradient is the loss's own: the official code sums per-process C with
a plain all_reduce [BT main.py L215-216], which carries no gradient, so its DDP update is 1/world_size of the
loss's gradient (facebookresearch/barlowtwins#8; lightly#1977 fixed the same in 2026). The loss value is the same.
Departures: the lr decays to 0 (official: to 1/1000 of the peak [BT main.py L165]).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ssl_bench.distributed import gather_with_grad
from ssl_bench.heads import BarlowTwinsProjector
from ssl_bench.method import Method
from ssl_bench.presets import by_epochs
from ssl_bench.registry import register_method
from ssl_bench.validate import WIDTHS, Range

from ssl_bench.methods.losses import barlow_twins_loss
from ssl_bench.methods.views import BARLOW_TWINS_VIEW_1, BARLOW_TWINS_VIEW_2


@register_method("barlow_twins")
class BarlowTwins(Method):
    """Barlow Twins: the two views' cross-correlation over the global batch pushed to the identity."""

    defaults = {
        "proj_dims": [8192, 8192, 8192],  # --projector 8192-8192-8192 [BT main.py L41, L195-202]
        "lambd": 0.0051,  # off-diagonal weight [BT main.py L39] (the paper rounds it to 5e-3)
        # biases and BN parameters (ndim 1): --learning-rate-biases 0.0048 / --learning-rate-weights 0.2
        # [BT main.py L33-36, L90-97, L167-168]
        "bias_lr_scale": 0.0048 / 0.2,
    }
    param_ranges = {"proj_dims": WIDTHS, "lambd": Range(0), "bias_lr_scale": Range(0)}
    # [BT main.py]: LARS (eta 1e-3, momentum 0.9) with ndim-1 parameters excluded from decay and adaptation
    # (L99-101, L233-234), lr 0.2 * B/256 for the weights (L158, L167), wd 1e-6 (L37; the paper says 1.5e-6),
    # 10 warmup epochs then cosine (L157-166).
    optim = {"optimizer": "lars", "base_lr": 0.2, "weight_decay": 1e-6, "momentum": 0.9, "warmup_epochs": 10,
             "lars_eta": 1e-3, "exclude_bias_and_norm": True}
    augmentation = {"views": [BARLOW_TWINS_VIEW_1, BARLOW_TWINS_VIEW_2]}
    # [BT main.py L29-31, README]: 1000 epochs at batch 2048 (73.5 top-1 from the released checkpoint)
    presets = by_epochs("barlow_twins", "BT main.py", 2048, {
        1000: ({"lambd": 0.0051}, {"base_lr": 0.2, "weight_decay": 1e-6})})

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__(backbone, num_classes, **params)
        self.projector = BarlowTwinsProjector(backbone.num_features, list(self.hparams["proj_dims"]))

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        z1 = self.projector(self.backbone(views[0]))
        z2 = self.projector(self.backbone(views[1]))
        return {"loss": barlow_twins_loss(gather_with_grad(z1), gather_with_grad(z2), self.hparams["lambd"])}

    def lr_groups(self) -> list[dict[str, Any]]:
        biases = [p for p in self.parameters() if p.requires_grad and p.ndim <= 1]
        return [{"params": biases, "lr_scale": self.hparams["bias_lr_scale"]}]
