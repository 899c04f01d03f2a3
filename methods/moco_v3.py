"""MoCo v3 for ResNets and ViTs (Chen, Xie and He, arXiv 2104.02057).

Algorithm box:
  base     = encoder -> projector -> predictor         (trained by the optimizer)
  momentum = encoder' -> projector'                    (EMA of base, never trained; no queue)
  for each batch of N images: two views v1, v2
      q1, q2 = predictor(projector(encoder(v)))
      k1, k2 = projector'(encoder'(v))                  no gradient
      ctr(q, k) = CE(q . gather(k)^T / T, arange(N) + N * rank) * 2T   (keys from every process)
      loss   = ctr(q1, k2) + ctr(q2, k1)
  after each optimizer step: momentum <- m * momentum + (1 - m) * base,
      m_k = 1 - (1 - m_0) (cos(pi k / K) + 1) / 2,  m_0 = 0.99
ViT (preset moco_v3-vit-300ep): a 3-layer projector, BN after the predictor's last layer [M3 builder.py
MoCo_ViT], T = 0.2, AdamW, and the patch projection frozen at its random init [M3 Sec. 4.1, vits.py
stop_grad_conv1], which the paper finds removes the training instability of ViTs.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ssl_bench.backbones.vit import freeze_patch_embed
from ssl_bench.distributed import gather_no_grad, rank
from ssl_bench.heads import MoCoV3Predictor, MoCoV3Projector
from ssl_bench.method import Method, cosine_momentum, set_requires_grad
from ssl_bench.presets import Preset, by_epochs
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM, POSITIVE, UNIT, Range

from ssl_bench.methods.losses import moco_v3_loss
from ssl_bench.methods.views import MOCO_V3_VIEW_1, MOCO_V3_VIEW_2


@register_method("moco_v3")
class MoCoV3(Method):
    """MoCo v3: symmetric contrastive loss against in-batch momentum keys, no queue (ResNet or ViT heads)."""

    defaults = {
        "proj_hidden_dim": 4096,  # [M3 builder.py]: projector d-4096-256 with BN, predictor 256-4096-256
        "proj_dim": 256,
        "pred_hidden_dim": 4096,
        "temperature": 1.0,  # ResNet; 0.2 for ViT [M3 Sec. 4]
        "tau_base": 0.99,  # cosine to 1; 0.996 for 1000 epochs
        "proj_layers": 2,  # [M3 builder.py] MoCo_ResNet: 2, MoCo_ViT: 3
        "pred_last_bn": False,  # [M3 builder.py] BN(affine=False) after the predictor: MoCo_ViT only
        "freeze_patch_embed": False,  # [M3 vits.py] --stop-grad-conv1: ViT only
    }
    param_ranges = {"proj_hidden_dim": DIM, "proj_dim": DIM, "pred_hidden_dim": DIM, "temperature": POSITIVE,
                    "tau_base": UNIT, "proj_layers": Range(2)}
    # [M3 CONFIG.md, ResNet-50 100 ep]: LARS lr 0.6 * B/256, wd 1e-6, 10 warmup epochs; ndim <= 1 excluded.
    optim = {"optimizer": "lars", "base_lr": 0.6, "weight_decay": 1e-6, "warmup_epochs": 10,
             "exclude_bias_and_norm": True}
    augmentation = {"views": [MOCO_V3_VIEW_1, MOCO_V3_VIEW_2]}  # BYOL-like asymmetric blur / solarize
    # [M3 CONFIG.md] ResNet-50 commands at batch 4096 (main_moco.py -b default): 100 ep with the defaults,
    # 300 ep --lr=.3, 1000 ep --lr=.3 --wd=1.5e-6 --moco-m=0.996 (`preset: paper`)
    presets = by_epochs("moco_v3", "M3 CONFIG.md", 4096, {
        100: ({"tau_base": 0.99}, {"base_lr": 0.6, "weight_decay": 1e-6}),
        300: ({"tau_base": 0.99}, {"base_lr": 0.3, "weight_decay": 1e-6}),
        1000: ({"tau_base": 0.996}, {"base_lr": 0.3, "weight_decay": 1.5e-6})})
    # [M3 CONFIG.md] ViT-Small / ViT-Base, 300 ep at batch 4096: --optimizer=adamw --lr=1.5e-4 --weight-decay=.1
    # --warmup-epochs=40 --stop-grad-conv1 --moco-m-cos --moco-t=.2 (momentum 0.99, main_moco.py default).
    # main_moco.py builds AdamW on model.parameters() with no exclusions (line 229): every tensor is decayed;
    # betas are torch's defaults. Heads: builder.py MoCo_ViT. Named only: `paper` at 300 ep is the ResNet one.
    presets["moco_v3-vit-300ep"] = Preset(
        4096, "M3 CONFIG.md ViT; main_moco.py; builder.py MoCo_ViT; vits.py", 300,
        params={"temperature": 0.2, "tau_base": 0.99, "proj_layers": 3, "pred_last_bn": True,
                "freeze_patch_embed": True},
        optim={"optimizer": "adamw", "base_lr": 1.5e-4, "weight_decay": 0.1, "warmup_epochs": 40,
               "betas": [0.9, 0.999], "exclude_bias_and_norm": False, "exclude_tokens": False})

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__(backbone, num_classes, **params)
        hp = self.hparams
        if hp["freeze_patch_embed"]:  # before the copy: the momentum encoder's stays frozen too
            freeze_patch_embed(backbone)
        self.projector = MoCoV3Projector(backbone.num_features, hp["proj_hidden_dim"], hp["proj_dim"],
                                         hp["proj_layers"])
        self.predictor = MoCoV3Predictor(hp["proj_dim"], hp["pred_hidden_dim"], hp["proj_dim"], hp["pred_last_bn"])
        self.momentum_backbone = copy.deepcopy(backbone)
        self.momentum_projector = copy.deepcopy(self.projector)
        set_requires_grad(self.momentum_backbone, False)
        set_requires_grad(self.momentum_projector, False)

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        v1, v2 = views[:2]
        q1 = self.predictor(self.projector(self.backbone(v1)))
        q2 = self.predictor(self.projector(self.backbone(v2)))
        with torch.no_grad():
            k1 = self.momentum_projector(self.momentum_backbone(v1))
            k2 = self.momentum_projector(self.momentum_backbone(v2))
        t, r = self.hparams["temperature"], rank()
        loss = moco_v3_loss(q1, gather_no_grad(k2), t, r) + moco_v3_loss(q2, gather_no_grad(k1), t, r)
        return {"loss": loss}

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.momentum_backbone), (self.projector, self.momentum_projector)]

    def momentum_at(self, step: int, total_steps: int) -> float:
        return cosine_momentum(self.hparams["tau_base"], step, total_steps)
