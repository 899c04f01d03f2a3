"""Losses as pure functions of tensors (solo-learn style), one module per method family, testable alone.

Every public loss is re-exported here, so `from ssl_bench.methods.losses import byol_loss` keeps working."""
from .byol import byol_loss, byol_regression_loss
from .dino import dino_center, dino_loss, teacher_temperature
from .moco import moco_v2_logits, moco_v2_loss, moco_v3_loss
from .nnclr import nearest_neighbour, nnclr_loss, support_set_enqueue
from .nt_xent import nt_xent_loss
from .swav import sinkhorn_knopp, swav_loss

__all__ = ["byol_loss", "byol_regression_loss", "dino_center", "dino_loss", "moco_v2_logits", "moco_v2_loss",
           "moco_v3_loss", "nearest_neighbour", "nnclr_loss", "nt_xent_loss", "sinkhorn_knopp",
           "support_set_enqueue", "swav_loss", "teacher_temperature"]
