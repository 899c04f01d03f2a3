"""Losses as pure functions of tensors (solo-learn style), one module per method family, testable alone.

Every public loss is re-exported here, so `from ssl_bench.methods.losses import byol_loss` keeps working."""
from .barlow_twins import barlow_twins_loss, batch_standardize, cross_correlation
from .byol import byol_loss, byol_regression_loss
from .moco import moco_v2_logits, moco_v2_loss, moco_v3_loss
from .nt_xent import nt_xent_loss
from .simsiam import simsiam_loss
from .vicreg import covariance_loss, invariance_loss, variance_loss, vicreg_loss

__all__ = ["barlow_twins_loss", "batch_standardize", "byol_loss", "byol_regression_loss", "covariance_loss",
           "cross_correlation", "invariance_loss", "moco_v2_logits", "moco_v2_loss", "moco_v3_loss", "nt_xent_loss",
           "simsiam_loss", "variance_loss", "vicreg_loss"]
