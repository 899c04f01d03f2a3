"""Generic MLP heads (lightly-style): one class built from a list of blocks, tiny named subclasses."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Block:
    """One Linear layer and what follows it: `Block(2048, 128, batch_norm=True, relu=False)`."""

    d_in: int
    d_out: int
    batch_norm: bool = False
    relu: bool = False
    bias: bool = True
    bn_affine: bool = True
    bn_center: bool = True  # False: the BN learns a scale but no shift (TF's center=False)


class Scale(nn.Module):
    """A learned per-feature scale (gamma without beta): after BatchNorm1d(affine=False) it is TF's
    batch_normalization(center=False, scale=True)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class MLPHead(nn.Sequential):
    """Linear -> [BatchNorm1d] -> [ReLU], once per block."""

    def __init__(self, blocks: list[Block]):
        layers: list[nn.Module] = []
        for b in blocks:
            layers.append(nn.Linear(b.d_in, b.d_out, bias=b.bias))
            if b.batch_norm:
                layers.append(nn.BatchNorm1d(b.d_out, affine=b.bn_affine and b.bn_center))
                if b.bn_affine and not b.bn_center:
                    layers.append(Scale(b.d_out))
            if b.relu:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def _hidden(d_in: int, d_out: int, bias: bool = True) -> Block:
    return Block(d_in, d_out, batch_norm=True, relu=True, bias=bias)


class BYOLHead(MLPHead):
    """BYOL projector and predictor [BYOL 3.3]: Linear(d, h) -> BN -> ReLU -> Linear(h, out), the last Linear
    without a bias as [DM utils/networks.py:41-44] (hk.Linear with_bias=False); `last_bias=True` is solo-learn's
    and lightly's head (solo/methods/byol.py, lightly heads.py ProjectionHead: a bias where no BN follows)."""

    def __init__(self, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256, last_bias: bool = False):
        super().__init__([_hidden(in_dim, hidden_dim), Block(hidden_dim, out_dim, bias=last_bias)])


class SimCLRHead(MLPHead):
    """SimCLR projector: Linear(d, h) -> BN -> ReLU -> Linear(h, out).

    output_bn=True is the official v1 head [SC model_util.py projection_head, linear_layer]: BN after every
    Linear, no Linear bias (the BN follows), the last BN with a scale but no shift (center=False), weights
    drawn from N(0, 0.01). [BYOL App. A]: "Contrary to SimCLR, the output of this MLP is not batch normalized."
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128, output_bn: bool = False):
        if not output_bn:
            super().__init__([_hidden(in_dim, hidden_dim), Block(hidden_dim, out_dim)])
            return
        super().__init__([_hidden(in_dim, hidden_dim, bias=False),
                          Block(hidden_dim, out_dim, batch_norm=True, bias=False, bn_center=False)])
        for layer in self:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=0.01)  # [SC model_util.py] random_normal_initializer(.01)


class MoCoV2Head(MLPHead):
    """MoCo v2 head: Linear(d, h) -> ReLU -> Linear(h, out) (no BN)."""

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128):
        super().__init__([Block(in_dim, hidden_dim, relu=True), Block(hidden_dim, out_dim)])


class MoCoV3Projector(MLPHead):
    """MoCo v3 projector [M3 builder.py _build_mlp]: (Linear(no bias)-BN-ReLU) x (num_layers - 1), then
    Linear(no bias)-BN(affine=False); 2 layers for ResNets (MoCo_ResNet), 3 for ViTs (MoCo_ViT)."""

    def __init__(self, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256, num_layers: int = 2):
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        super().__init__([_hidden(a, b, bias=False) for a, b in zip(dims, dims[1:])]
                         + [Block(dims[-1], out_dim, batch_norm=True, bias=False, bn_affine=False)])


class MoCoV3Predictor(MLPHead):
    """MoCo v3 predictor [M3 builder.py]: Linear-BN-ReLU-Linear, all without bias; for ViTs (MoCo_ViT) the
    last Linear is followed by BN(affine=False) as in the projector (_build_mlp's default last_bn=True)."""

    def __init__(self, in_dim: int = 256, hidden_dim: int = 4096, out_dim: int = 256, last_bn: bool = False):
        super().__init__([_hidden(in_dim, hidden_dim, bias=False),
                          Block(hidden_dim, out_dim, batch_norm=last_bn, bias=False, bn_affine=False)])


def _widths(in_dim: int, dims: list[int]) -> list[tuple[int, int]]:
    widths = [in_dim, *dims]
    if len(widths) < 2:
        raise ValueError(f"an MLP head needs at least one layer width; got {list(dims)}")
    return list(zip(widths[:-1], widths[1:]))


class BarlowTwinsProjector(MLPHead):
    """Barlow Twins projector [BT main.py L195-202]: (Linear(no bias)-BN-ReLU) per hidden width, then a plain
    Linear(no bias); 8192-8192-8192 on ImageNet."""

    def __init__(self, in_dim: int, dims: list[int]):
        pairs = _widths(in_dim, dims)
        super().__init__([_hidden(a, b, bias=False) for a, b in pairs[:-1]] + [Block(*pairs[-1], bias=False)])


class VICRegExpander(MLPHead):
    """VICReg expander [VR main_vicreg.py L223-232]: (Linear-BN-ReLU) per hidden width, the hidden Linears with
    a bias, then a Linear without bias; 8192-8192-8192 on ImageNet."""

    def __init__(self, in_dim: int, dims: list[int]):
        pairs = _widths(in_dim, dims)
        super().__init__([_hidden(a, b) for a, b in pairs[:-1]] + [Block(*pairs[-1], bias=False)])


class SimSiamProjector(MLPHead):
    """SimSiam projector [SS simsiam/builder.py L27-36]: Linear-BN-ReLU, Linear-BN-ReLU, Linear-BN(no affine),
    no Linear bias (the official output Linear's bias is frozen and cancelled by the BN that follows it)."""

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 2048):
        super().__init__([_hidden(in_dim, hidden_dim, bias=False), _hidden(hidden_dim, hidden_dim, bias=False),
                          Block(hidden_dim, out_dim, batch_norm=True, bias=False, bn_affine=False)])


class SimSiamPredictor(MLPHead):
    """SimSiam predictor [SS simsiam/builder.py L39-42]: a bottleneck Linear(no bias)-BN-ReLU, then Linear with
    bias; 2048-512-2048 on ImageNet."""

    def __init__(self, in_dim: int = 2048, hidden_dim: int = 512, out_dim: int = 2048):
        super().__init__([_hidden(in_dim, hidden_dim, bias=False), Block(hidden_dim, out_dim)])
