"""Backbone plugins: the `timm` adapter (any timm model name, the small-image stem). Build backbones with
`ssl_bench.create.create_backbone`; the names below are re-exported from the core for older imports."""
from ssl_bench.create import check_backbone_build, check_backbone_name, create_backbone

from ssl_bench.backbones.timm_backbone import feature_dim, timm_backbone

__all__ = ["create_backbone", "check_backbone_build", "check_backbone_name", "feature_dim", "timm_backbone"]
