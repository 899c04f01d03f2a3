"""Backbone plugins. `create_backbone(name, ...)` accepts any timm model name."""
from .timm_backbone import create_backbone, feature_dim, timm_backbone

__all__ = ["create_backbone", "feature_dim", "timm_backbone"]


def check_backbone_name(name: str, field: str) -> None:
    """Validation: a registered backbone or any timm model name."""
    import difflib

    import timm

    from ssl_bench.errors import UserError
    from ssl_bench.registry import BACKBONES

    if name in BACKBONES or name in timm.list_models():
        return
    close = difflib.get_close_matches(name, timm.list_models() + BACKBONES.names(), n=3)
    raise UserError(f"{field}: unknown backbone '{name}'; allowed: a registered backbone "
                    f"({', '.join(BACKBONES.names())}) or a timm model name; closest: {', '.join(close) or '(none)'}")
