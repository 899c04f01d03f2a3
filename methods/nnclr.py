"""NNCLR: Nearest-Neighbor Contrastive Learning of visual Representations (Dwibedi et al., arXiv 2104.14548).

Algorithm box [NNCLR Sec. 3.2, Fig. 2]:
  network     = encoder -> projector (3-layer MLP) = z -> predictor (2-layer MLP) = p
  support set Q = the l2-normalized z of past batches (FIFO queue, a buffer, so it is checkpointed)
  for each batch: two views v1, v2 of every image
      z1, z2 = projector(encoder([v1; v2]));  p1, p2 = predictor(z1), predictor(z2)
      nn1, nn2 = NN(z1, Q), NN(z2, Q)             nearest support-set neighbours, no gradient
      loss = (L(nn1, gather(p2)) + L(nn2, gather(p1))) / 2,
             L(nn, p)_i = -log exp(nn_i . p_i / t) / sum_k exp(nn_i . p_k / t)   (cosines; k over the global batch)
      Q <- Q with gather(normalize(z1)) written over its oldest rows (the GLOBAL batch: every process's rows)
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.distributed import gather_no_grad, gather_with_grad, rank
from ssl_bench.heads import Block, BYOLHead, MLPHead
from ssl_bench.method import Method
from ssl_bench.presets import Preset
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM, POSITIVE, Range

from ssl_bench.methods.losses import nearest_neighbour, nnclr_loss, support_set_enqueue
from ssl_bench.methods.views import BYOL_VIEW_1, BYOL_VIEW_2


def projector(d_in: int, hidden: int, out: int) -> MLPHead:
    """[NNCLR Sec. 4.1]: 3 layers, BN on each (the output's too), ReLU on the hidden ones."""
    return MLPHead([Block(d_in, hidden, batch_norm=True, relu=True), Block(hidden, hidden, batch_norm=True, relu=True),
                    Block(hidden, out, batch_norm=True)])


@register_method("nnclr")
class NNCLR(Method):
    """NNCLR: InfoNCE with each embedding's nearest neighbour from a support set as its positive."""

    defaults = {
        "proj_hidden_dim": 2048,  # [NNCLR Sec. 4.1]: projector 2048-2048-256
        "proj_dim": 256,
        "pred_hidden_dim": 4096,  # predictor 256-4096-256
        "temperature": 0.1,  # [NNCLR Sec. 4.1]
        "queue_size": 98304,  # support set [NNCLR Sec. 4.1, Table 7]
    }
    param_ranges = {"proj_hidden_dim": DIM, "proj_dim": DIM, "pred_hidden_dim": DIM, "temperature": POSITIVE,
                    "queue_size": Range(1)}
    # [NNCLR Sec. 4.1]: LARS, lr 0.3 per 256 images (4.8 at batch 4096), wd 1e-6, 10 warm-up epochs, cosine.
    optim = {"optimizer": "lars", "base_lr": 0.3, "weight_decay": 1e-6, "warmup_epochs": 10}
    augmentation = {"views": [BYOL_VIEW_1, BYOL_VIEW_2]}  # [NNCLR Sec. 4.1]: BYOL's augmentations
    presets = {"nnclr-1000ep": Preset(4096, "NNCLR arXiv 2104.14548 Sec. 4.1, Table 1", 1000)}

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__(backbone, num_classes, **params)
        hp = self.hparams
        self.projector = projector(backbone.num_features, hp["proj_hidden_dim"], hp["proj_dim"])
        self.predictor = BYOLHead(hp["proj_dim"], hp["pred_hidden_dim"], hp["proj_dim"])
        # random unit vectors until real embeddings replace them (solo-learn nnclr.py), the same on every rank
        self.register_buffer("queue", F.normalize(torch.randn(hp["queue_size"], hp["proj_dim"]), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        z = self.projector(self.backbone(torch.cat(views[:2])))  # one forward: BN sees both views
        p1, p2 = self.predictor(z).chunk(2)
        z1, z2 = F.normalize(z, dim=1).chunk(2)
        nn1, nn2 = nearest_neighbour(z1, self.queue), nearest_neighbour(z2, self.queue)
        t, r = self.hparams["temperature"], rank()
        loss = (nnclr_loss(nn1, gather_with_grad(p2), t, r) + nnclr_loss(nn2, gather_with_grad(p1), t, r)) / 2
        support_set_enqueue(self.queue, self.queue_ptr, gather_no_grad(z1))  # after the lookups
        return {"loss": loss}
