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


def check_backbone_build(name: str, kwargs: dict, small_stem: bool | str, field: str) -> None:
    """Validation: build a timm backbone on the meta device (no memory, no download, ~0.1 s), so that
    keyword arguments timm rejects fail now, naming `field` (the suite's backbones[i].kwargs)."""
    import warnings

    import torch

    from ssl_bench.errors import UserError
    from ssl_bench.registry import BACKBONES

    if name in BACKBONES:  # a registered plugin backbone may not support the meta device: built at run time
        return
    kwargs = {**kwargs, "pretrained": False}  # weights are not needed to check the architecture
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # e.g. "initializing zero-element tensors": one line on stderr only
            net = create_backbone(name, in_chans=3, image_size=32, small_stem=small_stem, **kwargs)
    except Exception as exc:  # timm raises TypeError, ValueError, AssertionError, ... for bad arguments
        msg = str(exc) if isinstance(exc, UserError) else \
            f"timm model '{name}' cannot be built with these kwargs: {type(exc).__name__}: {exc}"
        raise UserError(f"{field}: {msg}; allowed: keyword arguments of timm.create_model('{name}')".replace(
            "\n", " ")) from None
    empty = [n for n, p in net.named_parameters() if p.numel() == 0]
    if empty:
        raise UserError(f"{field}: timm model '{name}' gets a zero-sized layer ({empty[0]}); allowed: widths >= 1")
    _check_stage_count(name, kwargs, net, field)


def _check_stage_count(name: str, kwargs: dict, net: object, field: str) -> None:
    """timm's ResNet zips `channels` with its stage depths, silently dropping or ignoring extra entries."""
    import timm
    import torch

    from ssl_bench.errors import UserError

    channels = kwargs.get("channels")
    if channels is None or not isinstance(net, timm.models.resnet.ResNet):
        return

    if "layers" in kwargs:
        stages = len(kwargs["layers"])
    else:
        with torch.device("meta"):
            stages = len(timm.create_model(name, pretrained=False, num_classes=0).feature_info) - 1  # minus stem
    if not isinstance(channels, (list, tuple)) or len(channels) != stages:
        raise UserError(f"{field}.channels: bad value {channels!r}; allowed: a list of {stages} widths, one per "
                        f"stage of {name}")
