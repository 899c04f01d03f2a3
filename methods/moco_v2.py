"""MoCo v2: Momentum Contrast with an MLP head and stronger augmentation (Chen et al., arXiv 2003.04297).

Algorithm box:
  query network = encoder -> head                      (trained by the optimizer)
  key network   = encoder' -> head'                    (EMA of the query network, never trained)
  queue         = K l2-normalized keys of past batches (a buffer, so it is checkpointed)
  for each batch: two views v1, v2 of every image
      q      = normalize(head(encoder(v1)))
      k      = normalize(head'(encoder'(v2)))          no gradient
      logits = [q.k | q.queue^T] / T,  loss = cross-entropy with the positive at index 0
      enqueue gather(k) after the loss, replacing the oldest keys (FIFO; K divisible by the global batch)
  after each optimizer step: key <- m * key + (1 - m) * query, constant m = 0.999

Not implemented: MoCo's shuffle-BN (keys encoded with the batch shuffled across GPUs, so a key's BN statistics
are not those of its query's images [MoCo main_moco.py / builder.py _batch_shuffle_ddp]). With several devices
and `pretrain.sync_bn` the key encoder normalises over the global batch instead (SimCLR's global-BN remedy);
on one device, or without sync_bn, a warning says the batch statistics may leak (batch_norm_warning).
The online linear head (pretrain.online_linear) sees view 1 only: view 2 goes through the key encoder alone
(solo-learn's symmetric MoCo V2+ runs the query encoder on both views, so its head sees both).
"""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.distributed import gather_no_grad
from ssl_bench.errors import UserError
from ssl_bench.heads import MoCoV2Head
from ssl_bench.method import Method, set_requires_grad
from ssl_bench.presets import Preset
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM, POSITIVE, UNIT, Range

from ssl_bench.methods.losses import moco_v2_loss
from ssl_bench.methods.views import MOCO_V2_VIEW


@register_method("moco_v2")
class MoCoV2(Method):
    """MoCo v2: InfoNCE against a queue of momentum-encoded keys."""

    defaults = {
        "proj_hidden_dim": 2048,  # [MoCo v2]: Linear(2048, 2048)-ReLU-Linear(2048, 128) on ResNet-50
        "proj_dim": 128,
        "temperature": 0.2,
        "queue_size": 65536,  # K; must be a multiple of the global batch size
        "tau": 0.999,  # constant key-encoder momentum
    }
    param_ranges = {"proj_hidden_dim": DIM, "proj_dim": DIM, "temperature": POSITIVE, "queue_size": Range(1),
                    "tau": UNIT}
    # [MoCo main_moco.py]: SGD 0.03 at batch 256, wd 1e-4 on every parameter, no warmup, cosine.
    optim = {"optimizer": "sgd", "base_lr": 0.03, "weight_decay": 1e-4, "warmup_epochs": 0,
             "exclude_bias_and_norm": False}
    augmentation = {"views": [MOCO_V2_VIEW, MOCO_V2_VIEW]}
    # [MoCo main_moco.py, MoCo v2 Table 1]: the defaults above are its recipe (200 and 800 epochs), at batch 256
    presets = {"moco_v2-imagenet": Preset(256, "MoCo main_moco.py + MoCo v2 Table 1")}

    @classmethod
    def batch_norm_warning(cls, world_size: int, sync_bn: bool) -> str | None:
        if world_size > 1 and sync_bn:
            return None
        where = "on one device" if world_size == 1 else f"on {world_size} devices without pretrain.sync_bn"
        return (f"moco_v2 {where}: MoCo's shuffle-BN is not implemented, so the key encoder's BN statistics "
                "come from the same images as the queries' (the leak shuffle-BN prevents); with several devices, "
                "pretrain.sync_bn: true normalises over the global batch instead")

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__(backbone, num_classes, **params)
        hp = self.hparams
        if hp["queue_size"] < 1:
            raise UserError(f"methods.moco_v2.params.queue_size: bad value {hp['queue_size']!r}; "
                            "allowed: a positive multiple of pretrain.batch_size")
        self.projector = MoCoV2Head(backbone.num_features, hp["proj_hidden_dim"], hp["proj_dim"])
        self.key_backbone = copy.deepcopy(backbone)
        self.key_projector = copy.deepcopy(self.projector)
        set_requires_grad(self.key_backbone, False)
        set_requires_grad(self.key_projector, False)
        self.register_buffer("queue", F.normalize(torch.randn(hp["queue_size"], hp["proj_dim"]), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))  # next slot to overwrite

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        v1, v2 = views[:2]
        q = self.projector(self.backbone(v1))
        with torch.no_grad():
            k = F.normalize(self.key_projector(self.key_backbone(v2)), dim=1)
        # The clone keeps the negatives the loss saw intact for backward after the in-place enqueue.
        loss = moco_v2_loss(q, k, self.queue.clone(), self.hparams["temperature"])
        self.enqueue(k)
        return {"loss": loss}

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write this step's keys from every process over the oldest entries (no host sync)."""
        keys = gather_no_grad(keys)
        size, b = self.queue.shape[0], keys.shape[0]
        if size % b:
            raise UserError(f"methods.moco_v2.params.queue_size: {size} is not a multiple of the global batch "
                            f"size {b} (pretrain.batch_size); allowed: a queue size divisible by the batch size")
        slots = (self.queue_ptr + torch.arange(b, device=keys.device)) % size
        self.queue.index_copy_(0, slots, keys.to(self.queue.dtype))
        self.queue_ptr.add_(b).remainder_(size)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.key_backbone), (self.projector, self.key_projector)]

    def momentum_at(self, step: int, total_steps: int) -> float:
        return self.hparams["tau"]
