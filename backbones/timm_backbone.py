"""Any timm model as a feature extractor, with the small-image ResNet stem (CIFAR-style)."""
from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn

from ssl_bench.errors import UserError
from ssl_bench.registry import BACKBONES, register_backbone


def _small_stem(model: nn.Module) -> bool:
    """3x3 stride-1 first conv and no max-pool: what 32-64 px images need (lightly #1419)."""
    conv = getattr(model, "conv1", None)
    if isinstance(conv, nn.Sequential):  # deep stem: keep it, drop its stride
        conv = conv[0]
        if isinstance(conv, nn.Conv2d):
            conv.stride = (1, 1)
    elif isinstance(conv, nn.Conv2d):
        model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, 1, bias=conv.bias is not None)
    else:
        return False
    if hasattr(model, "maxpool"):
        model.maxpool = nn.Identity()
    return True


@register_backbone("timm")
def timm_backbone(model: str, in_chans: int = 3, image_size: int = 224, small_stem: bool | str = "auto",
                  pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build `timm.create_model(model, num_classes=0)`; the result exposes `num_features`.

    small_stem: "auto" switches ResNet-like stems to 3x3/stride 1/no max-pool at image_size <= 64.
    """
    if model not in timm.list_models() and model not in timm.list_models(pretrained=True):
        known = timm.list_models()
        import difflib

        close = difflib.get_close_matches(model, known, n=3)
        raise UserError(f"unknown timm model '{model}'; closest timm names: {', '.join(close) or '(none)'}"
                        " (see timm.list_models())")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    try:
        net = timm.create_model(model, pretrained=pretrained, num_classes=0, in_chans=in_chans, **kwargs)
    except TypeError as exc:
        raise UserError(f"timm model '{model}' rejected its keyword arguments {sorted(kwargs)}: {exc}") from exc
    use_small = (image_size <= 64) if small_stem == "auto" else bool(small_stem)
    net.small_stem = _small_stem(net) if use_small else False
    net.num_features = int(net.num_features)
    return net


def create_backbone(name: str, *, in_chans: int, image_size: int, small_stem: bool | str = "auto",
                    **kwargs: Any) -> nn.Module:
    """The one way in: a registered backbone name, or else any timm model name."""
    if name in BACKBONES and name != "timm":
        return BACKBONES.get(name)(in_chans=in_chans, image_size=image_size, small_stem=small_stem, **kwargs)
    return timm_backbone(name, in_chans=in_chans, image_size=image_size, small_stem=small_stem, **kwargs)


@torch.no_grad()
def feature_dim(net: nn.Module, in_chans: int, image_size: int) -> int:
    dim = getattr(net, "num_features", None)
    if dim:
        return int(dim)
    was = net.training
    net.eval()
    out = net(torch.zeros(2, in_chans, image_size, image_size))
    net.train(was)
    return int(out.shape[-1])
