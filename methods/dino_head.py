"""DINO's projection head [dino vision_transformer.py DINOHead]: an MLP to a bottleneck, l2-normalization, and a
weight-normalized linear layer to K outputs whose norms are fixed at 1 when `norm_last_layer`."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WeightNormLinear(nn.Module):
    """y = x W^T with W = g * V / ||V|| row by row (torch.nn.utils.weight_norm over dim 0, no bias): the
    parameters are weight_v (K x d) and weight_g (K x 1, initialised to 1). With fixed_norm, weight_g does not
    train (DINO's norm_last_layer)."""

    def __init__(self, d_in: int, d_out: int, fixed_norm: bool = True):
        super().__init__()
        v = nn.Linear(d_in, d_out, bias=False).weight.detach().clone()  # nn.Linear's default initialisation
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(torch.ones(d_out, 1), requires_grad=not fixed_norm)

    def weight(self) -> torch.Tensor:
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight())


class DINOHead(nn.Module):
    """mlp: Linear(d, h) [-BN] -GELU, (n - 2) x (Linear(h, h) [-BN] -GELU), Linear(h, bottleneck); then
    l2-normalize and last_layer (WeightNormLinear to out_dim). Linear weights trunc_normal(std 0.02), biases 0
    [DINOHead._init_weights]; the last layer keeps nn.Linear's initialisation with norms 1."""

    def __init__(self, in_dim: int, out_dim: int = 65536, use_bn: bool = False, norm_last_layer: bool = True,
                 n_layers: int = 3, hidden_dim: int = 2048, bottleneck_dim: int = 256):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (max(n_layers, 1) - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims, dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers += ([nn.BatchNorm1d(b)] if use_bn else []) + [nn.GELU()]
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim, fixed_norm=norm_last_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))
