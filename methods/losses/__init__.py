"""Losses as pure functions of tensors (solo-learn style), one module per method family, testable alone.

Every public loss is re-exported here, so `from ssl_bench.methods.losses import byol_loss` keeps working."""
from ssl_bench.methods.losses.barlow_twins import barlow_twins_loss, batch_standardize, cross_correlation
from ssl_bench.methods.losses.byol import byol_loss, byol_regression_loss
from ssl_bench.methods.losses.dino import dino_center, dino_loss, teacher_temperature
from ssl_bench.methods.losses.ijepa import ijepa_loss, ijepa_targets
from ssl_bench.methods.losses.mae import mae_loss, patchify
from ssl_bench.methods.losses.moco import moco_v2_logits, moco_v2_loss, moco_v3_loss
from ssl_bench.methods.losses.nnclr import nearest_neighbour, nnclr_loss, support_set_enqueue
from ssl_bench.methods.losses.nt_xent import nt_xent_loss
from ssl_bench.methods.losses.simsiam import simsiam_loss
from ssl_bench.methods.losses.swav import sinkhorn_knopp, swav_loss
from ssl_bench.methods.losses.vicreg import covariance_loss, invariance_loss, variance_loss, vicreg_loss

__all__ = ["barlow_twins_loss", "batch_standardize", "byol_loss", "byol_regression_loss", "covariance_loss",
           "cross_correlation", "dino_center", "dino_loss", "ijepa_loss", "ijepa_targets", "invariance_loss",
           "mae_loss", "moco_v2_logits", "moco_v2_loss", "moco_v3_loss", "nearest_neighbour", "nnclr_loss",
           "nt_xent_loss", "patchify", "simsiam_loss", "sinkhorn_knopp", "support_set_enqueue", "swav_loss",
           "teacher_temperature", "variance_loss", "vicreg_loss"]
