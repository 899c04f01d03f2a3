"""SwAV: Swapping Assignments between multiple Views (Caron et al., arXiv 2006.09882).

Algorithm box [SwAV Sec. 3, facebookresearch/swav main_swav.py]:
  network   = encoder -> projector (MLP) -> l2-normalize = z -> prototypes C (K x d, no bias): scores z . C
  for each batch: 2 global views + N local views (multi-crop) of every image
      C <- normalize(C) (rows), before the forward
      z = normalize(projector(encoder(all views)))   one encoder forward per run of same-size views
      for each global view i (crops_for_assign):
          out = scores_i (no gradient); from epoch `epoch_queue_starts` on, the queue of past z_i of this
                process scores against the current C and, once full, joins out in front
          q_i = Sinkhorn-Knopp(out / eps, 3 iterations)[last B rows]   sums over the global batch
          loss_i = mean over views v != i of H(q_i, softmax(scores_v / t))
      loss = mean_i loss_i
      during the first `freeze_prototypes_niters` steps the gradient of C is dropped
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.distributed import world_size
from ssl_bench.errors import UserError
from ssl_bench.heads import Block, MLPHead
from ssl_bench.method import Method, multicrop_forward
from ssl_bench.presets import Preset, by_epochs
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM, POSITIVE, Range

from ssl_bench.methods.losses import sinkhorn_knopp, swav_loss
from ssl_bench.methods.views import LOCAL_96_OF_224, SWAV_VIEW, multi_crop

SCALE = Range(0, 1, lo_open=True)
SCRIPTS = "swav scripts/swav_{}_pretrain.sh"


@register_method("swav")
class SwAV(Method):
    """SwAV: swapped prediction of Sinkhorn cluster codes over 2 global + N local crops."""

    defaults = {
        "hidden_mlp": 2048,  # [main_swav.py L107]: Linear-BN-ReLU-Linear [src/resnet50.py L205]
        "feat_dim": 128,  # [L65]
        "nmb_prototypes": 3000,  # [L67]
        "temperature": 0.1,  # [L59]
        "epsilon": 0.05,  # [L61]
        "sinkhorn_iterations": 3,  # [L63]
        "crops_for_assign": [0, 1],  # [L57]
        # global, used from this epoch on; rounded down to a multiple of the global batch [L213] (so off at 4096)
        "queue_length": 3840,  # [scripts/swav_*_bs256_pretrain.sh]
        "epoch_queue_starts": 15,  # [L71]
        "freeze_prototypes_niters": 313,  # [L83; the 4096 scripts] (bs256 scripts: 5005)
        "global_crop_scale": [0.14, 1.0],  # [scripts/swav_800ep_pretrain.sh]: min/max_scale_crops
        "local_crops": 6,  # nmb_crops 2 6
        "local_crop_scale": [0.05, 0.14],
        "local_size_frac": LOCAL_96_OF_224,  # size_crops 224 96
    }
    param_ranges = {"hidden_mlp": DIM, "feat_dim": DIM, "nmb_prototypes": DIM, "temperature": POSITIVE,
                    "epsilon": POSITIVE, "sinkhorn_iterations": Range(1), "crops_for_assign": Range(0, 1),
                    "queue_length": Range(0), "epoch_queue_starts": Range(0), "freeze_prototypes_niters": Range(0),
                    "global_crop_scale": SCALE, "local_crops": Range(0, 64), "local_crop_scale": SCALE,
                    "local_size_frac": SCALE}
    # [scripts/swav_800ep_pretrain.sh]: LARC on SGD(momentum 0.9) over every parameter, wd 1e-6, lr 4.8 at batch
    # 4096 (0.3 per 256), 10 warm-up epochs. Not expressed: warm-up from 0.3 and a final lr of 0.0048 (ours: 0).
    optim = {"optimizer": "lars", "base_lr": 0.3, "weight_decay": 1e-6, "warmup_epochs": 10,
             "exclude_bias_and_norm": False}
    augmentation = {"views": multi_crop([SWAV_VIEW, SWAV_VIEW], SWAV_VIEW, 6, [0.14, 1.0], [0.05, 0.14],
                                        LOCAL_96_OF_224)}
    presets = {**by_epochs("swav", "swav README + scripts/swav_{100,200,400,800}ep_pretrain.sh", 4096,
                           {n: ({}, {}) for n in (100, 200, 400, 800)}),
               **{f"swav-{n}ep-bs256": Preset(256, SCRIPTS.format(f"{n}ep_bs256"), n,
                                              {"freeze_prototypes_niters": 5005},
                                              {"base_lr": 0.6, "warmup_epochs": 0}) for n in (200, 400)}}

    @classmethod
    def view_recipes(cls, params: dict[str, Any]) -> list[dict[str, Any]]:
        p = {**cls.defaults, **params}
        return multi_crop([SWAV_VIEW, SWAV_VIEW], SWAV_VIEW, p["local_crops"], p["global_crop_scale"],
                          p["local_crop_scale"], p["local_size_frac"])

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__(backbone, num_classes, **params)
        hp = self.hparams
        if not set(hp["crops_for_assign"]) <= {0, 1} or not hp["crops_for_assign"]:
            raise UserError(f"methods.swav.params.crops_for_assign: bad value {hp['crops_for_assign']!r}; "
                            "allowed: a non-empty list of global view indices (0, 1)")
        self.projector = MLPHead([Block(backbone.num_features, hp["hidden_mlp"], batch_norm=True, relu=True),
                                  Block(hp["hidden_mlp"], hp["feat_dim"])])
        self.prototypes = nn.Linear(hp["feat_dim"], hp["nmb_prototypes"], bias=False)
        # this process's queue [L227]: the union over processes is the global queue the Sinkhorn sums see
        self.register_buffer("queue", torch.zeros(len(hp["crops_for_assign"]), hp["queue_length"] // world_size(),
                                                  hp["feat_dim"]))

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        hp, b = self.hparams, views[0].shape[0]
        with torch.no_grad():  # [L278]
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        z = F.normalize(self.projector(multicrop_forward(self.backbone, views)), dim=1)
        scores = self.prototypes(z).chunk(len(views))
        length, use = self._queue_plan(b)
        codes = []
        for i, crop in enumerate(hp["crops_for_assign"]):
            with torch.no_grad():
                out = scores[crop].detach()
                if use:
                    out = torch.cat((self.queue[i, :length] @ self.prototypes.weight.T, out))
                if length:  # [L303]: shift by one batch, newest first
                    self.queue[i, b:length] = self.queue[i, :length - b].clone()
                    self.queue[i, :b] = z[crop * b:(crop + 1) * b].detach()
                codes.append(sinkhorn_knopp(out, hp["epsilon"], hp["sinkhorn_iterations"])[-b:])
        return {"loss": swav_loss(list(scores), codes, hp["crops_for_assign"], hp["temperature"])}

    def _queue_plan(self, b: int) -> tuple[int, bool]:
        """(rows of this process's queue in use, whether it is full): none before `epoch_queue_starts`; its
        length rounded down to a multiple of the batch [L213]; full once (steps since its start) * b reach it,
        which is when the official loop finds its last row non-zero [L296]."""
        p, length = self.progress, self.queue.shape[1]
        length -= length % b
        if length == 0 or p.epoch < self.hparams["epoch_queue_starts"]:
            return 0, False
        filled = (p.step - self.hparams["epoch_queue_starts"] * p.steps_per_epoch) * b
        return length, filled >= length

    def before_optimizer_step(self) -> None:
        if self.progress.step < self.hparams["freeze_prototypes_niters"]:  # [L325]
            self.prototypes.weight.grad = None
