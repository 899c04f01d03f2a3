"""Spatial tokens of any backbone, for protocols that pool tokens themselves (the attentive probe).

A ViT gives its final-normed patch tokens (backbones/vit.py, forward_tokens); a CNN its last feature map, one
token per spatial position (timm's forward_features: the map that forward() pools), as V-JEPA's and the
Efficient Probing attentive probes take ResNet features."""
from __future__ import annotations

import torch
from torch import nn

from ssl_bench.backbones.vit import is_vit


def feature_tokens(backbone: nn.Module, x: torch.Tensor, include_prefix: bool = False) -> torch.Tensor:
    """(B, N, C) tokens: a ViT's patch tokens (its class / register tokens first with include_prefix), or a
    CNN's last feature map (B, C, H, W) as H*W tokens in row-major order."""
    if is_vit(backbone):
        tokens = backbone.forward_tokens(x)
        return tokens if include_prefix else tokens[:, backbone.num_prefix_tokens:]
    fmap = backbone.forward_features(x)
    if fmap.dim() != 4:
        raise ValueError(f"{type(backbone).__name__}.forward_features gave shape {tuple(fmap.shape)}; expected a "
                         "(B, C, H, W) feature map")
    return fmap.flatten(2).transpose(1, 2)
