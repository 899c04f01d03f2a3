"""Backbone plugins: the `timm` adapter (any timm model name, the small-image stem, timm ViTs with the token API
of vit.py). Build backbones with `ssl_bench.create.create_backbone`; `feature_tokens` gives any backbone's
spatial tokens (ViT patch tokens, a CNN's last feature map). The create names are re-exported from the core for
older imports."""
from ssl_bench.create import check_backbone_build, check_backbone_name, create_backbone

from ssl_bench.backbones.timm_backbone import feature_dim, timm_backbone
from ssl_bench.backbones.tokens import feature_tokens
from ssl_bench.backbones.vit import freeze_patch_embed, is_vit

__all__ = ["create_backbone", "check_backbone_build", "check_backbone_name", "feature_dim", "feature_tokens",
           "freeze_patch_embed", "is_vit", "timm_backbone"]
