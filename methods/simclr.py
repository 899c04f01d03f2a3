"""SimCLR: a Simple Framework for Contrastive Learning (Chen et al., arXiv 2002.05709).

Algorithm box:
  network = encoder -> projector                       (one network, no target, no EMA)
  for each batch of N images: two views v1, v2
      z       = projector(encoder([v1; v2]))           both views as one batch of 2N
      z_all   = gather_with_grad(z)                    negatives from every process (identity on one)
      loss    = NT-Xent(z, z_all, t): for each anchor, its other view is the positive and the
                remaining 2(N - 1) rows (all processes: 2(WN - 1)) are negatives; mean over anchors
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ssl_bench.distributed import gather_with_grad, rank
from ssl_bench.heads import SimCLRHead
from ssl_bench.method import Method
from ssl_bench.presets import Preset
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM, POSITIVE, Range

from ssl_bench.methods.losses import nt_xent_loss
from ssl_bench.methods.views import simclr_view


@register_method("simclr")
class SimCLR(Method):
    """SimCLR: NT-Xent over 2N views, projector MLP, no target network."""

    defaults = {
        "proj_hidden_dim": 2048,  # [SCp Sec. 2, protocols.md]: 2048 hidden, 128 out (v1)
        "proj_dim": 128,
        "temperature": 0.1,  # ImageNet at batch 4096 [SCp B.9]; 0.5 for CIFAR-10
        "color_strength": 1.0,  # s of the color jitter (0.8s, 0.8s, 0.8s, 0.2s) [SCp App. A]; 0.5 for CIFAR
        "proj_output_bn": False,  # True: the official v1 head, BN on every layer incl. the output [SC model_util.py]
    }
    param_ranges = {"proj_hidden_dim": DIM, "proj_dim": DIM, "temperature": POSITIVE, "color_strength": Range(0)}
    optim = {"optimizer": "lars", "base_lr": 0.3, "weight_decay": 1e-6, "warmup_epochs": 10}  # [SCp B.1]
    augmentation = {"views": [simclr_view(1.0), simclr_view(1.0)]}
    # [SCp B.1, SC run.py/model_util.py]: the defaults above at batch 4096, with the official v1 head
    presets = {"simclr-4096": Preset(4096, "SCp B.1 + SC model_util.py", params={"proj_output_bn": True})}

    @classmethod
    def view_recipes(cls, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Both views for the resolved hyperparameters: the jitter follows `color_strength`."""
        s = params.get("color_strength", cls.defaults["color_strength"])
        return [simclr_view(s), simclr_view(s)]

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__(backbone, num_classes, **params)
        hp = self.hparams
        self.projector = SimCLRHead(backbone.num_features, hp["proj_hidden_dim"], hp["proj_dim"], hp["proj_output_bn"])

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        z = self.projector(self.backbone(torch.cat(views[:2])))  # one forward: BN sees all 2N views
        return {"loss": nt_xent_loss(z, gather_with_grad(z), self.hparams["temperature"], rank())}
