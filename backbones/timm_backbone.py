"""Any timm model as a feature extractor, with the small-image ResNet stem (CIFAR-style); timm ViTs get the
token API of backbones/vit.py and the suite's image size."""
from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn

from ssl_bench.errors import UserError
from ssl_bench.registry import register_backbone

from ssl_bench.backbones.vit import vit_kwargs, with_token_api


def _small_stem(model: nn.Module, padding: int = 1) -> bool:
    """3x3 stride-1 first conv and no max-pool: what 32-64 px images need (lightly #1419). `padding` 1 keeps the
    input size (lightly's ResNetGenerator); solo-learn's CIFAR stem pads by 2, so a 32 px image gives 34 x 34 maps
    [solo/methods/base.py:199-203]."""
    conv = getattr(model, "conv1", None)
    if isinstance(conv, nn.Sequential):  # deep stem: keep it, drop its stride
        conv = conv[0]
        if isinstance(conv, nn.Conv2d):
            conv.stride = (1, 1)
            conv.padding = (padding, padding)
    elif isinstance(conv, nn.Conv2d):
        model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, padding, bias=conv.bias is not None)
    else:
        return False
    if hasattr(model, "maxpool"):
        model.maxpool = nn.Identity()
    return True


def _he(conv: nn.Conv2d) -> nn.Conv2d:
    """timm's ResNet init for the convs we rebuild (He normal, fan_out), so they match their neighbours."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def _narrow_stem(model: nn.Module, width: int) -> bool:
    """Make a single-conv ResNet stem `width` channels wide.

    timm documents `stem_width` as the width of the default stem but builds it 64 wide whatever is asked
    (only its deep stems read it). A 64-channel conv + BN at full resolution then dominates a narrow CPU
    network, so the stem conv, its BN and the first block's inputs are rebuilt at `width`.
    """
    conv, bn, layer1 = getattr(model, "conv1", None), getattr(model, "bn1", None), getattr(model, "layer1", None)
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d) or layer1 is None:
        return False
    if conv.out_channels == width:
        return True
    model.conv1 = _he(nn.Conv2d(conv.in_channels, width, conv.kernel_size, conv.stride, conv.padding,
                                bias=conv.bias is not None))
    model.bn1 = nn.BatchNorm2d(width)
    block = layer1[0]
    old = block.conv1
    block.conv1 = _he(nn.Conv2d(width, old.out_channels, old.kernel_size, old.stride, old.padding,
                                bias=old.bias is not None))
    out = block.conv3.out_channels if hasattr(block, "conv3") else block.conv2.out_channels
    if block.downsample is None:  # the 64-in identity shortcut no longer matches: project it
        block.downsample = nn.Sequential(_he(nn.Conv2d(width, out, 1, bias=False)), nn.BatchNorm2d(out))
    else:
        ds = next(m for m in block.downsample.modules() if isinstance(m, nn.Conv2d))
        new = _he(nn.Conv2d(width, ds.out_channels, ds.kernel_size, ds.stride, ds.padding, bias=ds.bias is not None))
        for name, child in block.downsample.named_children():
            if child is ds:
                setattr(block.downsample, name, new)
    return True


@register_backbone("timm")
def timm_backbone(model: str, in_chans: int = 3, image_size: int = 224, small_stem: bool | str = "auto",
                  pretrained: bool = False, stem_padding: int = 1, **kwargs: Any) -> nn.Module:
    """Build `timm.create_model(model, num_classes=0)`; the result exposes `num_features`.

    small_stem: "auto" switches ResNet-like stems to 3x3/stride 1/no max-pool at image_size <= 64;
    stem_padding: that stem's zero padding (1, or 2 as solo-learn's CIFAR ResNets); a suite sets it in the
    backbone's `kwargs`. Any other kwarg goes to timm, e.g. `zero_init_last: false` for the BYOL paper's
    initialisation (timm zero-initialises each block's last BN; [DM README.md:101-111]: the paper's results
    were obtained without that).
    A model whose input size is fixed at build time (timm's `fixed_input_size`: ViT, DeiT, Swin, ...) is built
    for `image_size` unless kwargs set `img_size`; a timm VisionTransformer gets the token API (backbones/vit.py).
    """
    if isinstance(stem_padding, bool) or not isinstance(stem_padding, int) or not 0 <= stem_padding <= 3:
        raise UserError(f"timm model '{model}': stem_padding={stem_padding!r}; allowed: an integer 0-3 (1: the "
                        "size-keeping 3x3 stem, 2: solo-learn's CIFAR stem)")
    if model not in timm.list_models() and model not in timm.list_models(pretrained=True):
        known = timm.list_models()
        import difflib

        close = difflib.get_close_matches(model, known, n=3)
        raise UserError(f"unknown timm model '{model}'; closest timm names: {', '.join(close) or '(none)'}"
                        " (see timm.list_models())")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    if "img_size" not in kwargs and takes_img_size(model):
        kwargs["img_size"] = image_size
    if pretrained and "stem_width" in kwargs:
        raise UserError(f"timm model '{model}': stem_width={kwargs['stem_width']} with pretrained=true would "
                        "replace the pretrained stem; allowed: one of the two")
    try:
        if vit_kwargs(kwargs) != kwargs and _builds_vit(model, in_chans, kwargs):
            kwargs = vit_kwargs(kwargs)
        net = timm.create_model(model, pretrained=pretrained, num_classes=0, in_chans=in_chans, **kwargs)
    except TypeError as exc:
        raise UserError(f"timm model '{model}' rejected its keyword arguments {sorted(kwargs)}: {exc}") from exc
    if isinstance(net, timm.models.VisionTransformer):
        net = with_token_api(net, model)
    use_small = (image_size <= 64) if small_stem == "auto" else bool(small_stem)
    net.small_stem = _small_stem(net, stem_padding) if use_small else False
    if stem_padding != 1 and not net.small_stem:
        raise UserError(f"timm model '{model}': stem_padding={stem_padding} applies to the small-image stem, which "
                        f"this backbone does not use at {image_size} px; allowed: small_stem: true, or no stem_padding")
    if "stem_width" in kwargs and not isinstance(getattr(net, "conv1", None), nn.Sequential):
        if not _narrow_stem(net, int(kwargs["stem_width"])):
            raise UserError(f"timm model '{model}': stem_width={kwargs['stem_width']} needs a ResNet-style stem "
                            "(conv1, bn1, layer1); allowed: leave stem_width out for this model")
    net.num_features = int(net.num_features)
    return net


def takes_img_size(model: str) -> bool:
    """timm's own rule: a model whose pretrained config says `fixed_input_size` takes an `img_size` argument
    that fixes its input size, and is built at the config's 224 unless told otherwise (timm _builder.py,
    _update_default_model_kwargs)."""
    cfg = timm.models.get_pretrained_cfg(model)
    return bool(cfg is not None and cfg.fixed_input_size)


def _builds_vit(model: str, in_chans: int, kwargs: dict[str, Any]) -> bool:
    """Whether `model` is a timm VisionTransformer (built on the meta device: no memory, no weights)."""
    probe_kwargs = {k: v for k, v in kwargs.items() if k != "pretrained_cfg_overlay"}
    with torch.device("meta"):
        probe = timm.create_model(model, pretrained=False, num_classes=0, in_chans=in_chans, **probe_kwargs)
    return isinstance(probe, timm.models.VisionTransformer)


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
