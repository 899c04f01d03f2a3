"""SimSiam: Exploring Simple Siamese Representation Learning (Chen and He, arXiv 2011.10566).

Algorithm box [SSp Alg. 1]:
  network   = encoder -> projector                     f (one network for both views: no target, no EMA)
  predictor = h, a bottleneck MLP on f's output
  for each batch: two views v1, v2
      z1, z2 = f(v1), f(v2)
      p1, p2 = h(z1), h(z2)
      loss   = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2,  D(p, z) = -mean cos(p, z)
  optimizer: SGD, lr 0.05 * B/256 with cosine decay; the predictor's lr stays at its initial value

Nothing is gathered across processes: the loss is each process's batch mean, and DDP's gradient average makes
it the global batch's (only SyncBatchNorm, converted by the engine, shares statistics).
Departures: the cosine steps per iteration (official: per epoch [SS main_simsiam.py L359-366]).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ssl_bench.heads import SimSiamPredictor, SimSiamProjector
from ssl_bench.method import Method
from ssl_bench.presets import Preset
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM

from ssl_bench.methods.losses import simsiam_loss
from ssl_bench.methods.views import SIMSIAM_VIEW


@register_method("simsiam")
class SimSiam(Method):
    """SimSiam: a predictor against the stop-gradient of the other view; no negatives, no momentum encoder."""

    defaults = {
        "proj_hidden_dim": 2048,  # the projector's hidden layers are the encoder's width, 2048 for a ResNet-50
        "proj_dim": 2048,  # --dim [SS main_simsiam.py L86; builder.py L27-35]
        "pred_hidden_dim": 512,  # --pred-dim [SS main_simsiam.py L88; builder.py L39-42]
        # --fix-pred-lr [SS main_simsiam.py L90, L193-195, L363-364]: off in argparse, on in the README's
        # command that gives the published 68.1 ("a non-decaying predictor learning rate")
        "fix_pred_lr": True,
    }
    param_ranges = {"proj_hidden_dim": DIM, "proj_dim": DIM, "pred_hidden_dim": DIM}
    # [SS main_simsiam.py]: SGD lr 0.05 * B/256 (L56, L157), momentum 0.9 (L58), wd 1e-4 on every parameter
    # (L60, L199-201: no bias / BN exclusion), cosine without warmup (L361).
    optim = {"optimizer": "sgd", "base_lr": 0.05, "weight_decay": 1e-4, "momentum": 0.9, "warmup_epochs": 0,
             "exclude_bias_and_norm": False}
    augmentation = {"views": [SIMSIAM_VIEW, SIMSIAM_VIEW]}
    # [SS main_simsiam.py L47-51, README]: 100 epochs at batch 512 (68.1 top-1); the README's batch-256 row (68.3)
    presets = {
        "simsiam-100ep": Preset(512, "SS main_simsiam.py defaults + README", 100, optim={"base_lr": 0.05}),
        "simsiam-100ep-256": Preset(256, "SS README (batch-256 row)", 100, optim={"base_lr": 0.05}),
    }

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__(backbone, num_classes, **params)
        hp = self.hparams
        self.projector = SimSiamProjector(backbone.num_features, hp["proj_hidden_dim"], hp["proj_dim"])
        self.predictor = SimSiamPredictor(hp["proj_dim"], hp["pred_hidden_dim"], hp["proj_dim"])

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        z1 = self.projector(self.backbone(views[0]))
        z2 = self.projector(self.backbone(views[1]))
        return {"loss": simsiam_loss(self.predictor(z1), self.predictor(z2), z1, z2)}

    def lr_groups(self) -> list[dict[str, Any]]:
        if not self.hparams["fix_pred_lr"]:
            return []
        return [{"params": list(self.predictor.parameters()), "fixed_lr": True}]
