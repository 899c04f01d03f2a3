"""Generic MLP heads (lightly-style): one class built from a list of blocks, tiny named subclasses."""
from __future__ import annotations

from dataclasses import dataclass

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


class MLPHead(nn.Sequential):
    """Linear -> [BatchNorm1d] -> [ReLU], once per block."""

    def __init__(self, blocks: list[Block]):
        layers: list[nn.Module] = []
        for b in blocks:
            layers.append(nn.Linear(b.d_in, b.d_out, bias=b.bias))
            if b.batch_norm:
                layers.append(nn.BatchNorm1d(b.d_out, affine=b.bn_affine))
            if b.relu:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def _hidden(d_in: int, d_out: int, bias: bool = True) -> Block:
    return Block(d_in, d_out, batch_norm=True, relu=True, bias=bias)


class BYOLHead(MLPHead):
    """BYOL projector and predictor [BYOL 3.3]: Linear(d, h) -> BN -> ReLU -> Linear(h, out)."""

    def __init__(self, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256):
        super().__init__([_hidden(in_dim, hidden_dim), Block(hidden_dim, out_dim)])


class SimCLRHead(MLPHead):
    """SimCLR v1 projector: Linear(d, h) -> BN -> ReLU -> Linear(h, out)."""

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128):
        super().__init__([_hidden(in_dim, hidden_dim), Block(hidden_dim, out_dim)])


class MoCoV2Head(MLPHead):
    """MoCo v2 head: Linear(d, h) -> ReLU -> Linear(h, out) (no BN)."""

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128):
        super().__init__([Block(in_dim, hidden_dim, relu=True), Block(hidden_dim, out_dim)])


class MoCoV3Projector(MLPHead):
    """MoCo v3 projector [M3]: Linear(no bias)-BN-ReLU-Linear(no bias)-BN(affine=False)."""

    def __init__(self, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256):
        super().__init__([_hidden(in_dim, hidden_dim, bias=False),
                          Block(hidden_dim, out_dim, batch_norm=True, bias=False, bn_affine=False)])


class MoCoV3Predictor(MLPHead):
    """MoCo v3 predictor [M3]: Linear-BN-ReLU-Linear."""

    def __init__(self, in_dim: int = 256, hidden_dim: int = 4096, out_dim: int = 256):
        super().__init__([_hidden(in_dim, hidden_dim, bias=False), Block(hidden_dim, out_dim, bias=False)])
