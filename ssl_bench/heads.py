"""Generic MLP heads (lightly-style): one class built from a list of blocks, tiny named subclasses."""
from __future__ import annotations

from torch import nn


class MLPHead(nn.Sequential):
    """Linear -> [BN] -> [ReLU] blocks. Each block: (in, out, batch_norm, relu, bias, bn_affine)."""

    def __init__(self, blocks: list[tuple[int, int, bool, bool, bool, bool]]):
        layers: list[nn.Module] = []
        for d_in, d_out, bn, relu, bias, affine in blocks:
            layers.append(nn.Linear(d_in, d_out, bias=bias))
            if bn:
                layers.append(nn.BatchNorm1d(d_out, affine=affine))
            if relu:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class BYOLHead(MLPHead):
    """BYOL projector and predictor [BYOL 3.3]: Linear(d, h) -> BN -> ReLU -> Linear(h, out)."""

    def __init__(self, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256):
        super().__init__([(in_dim, hidden_dim, True, True, True, True), (hidden_dim, out_dim, False, False, True, True)])


class SimCLRHead(MLPHead):
    """SimCLR v1 projector: Linear(d, h) -> BN -> ReLU -> Linear(h, out)."""

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128):
        super().__init__([(in_dim, hidden_dim, True, True, True, True), (hidden_dim, out_dim, False, False, True, True)])


class MoCoV2Head(MLPHead):
    """MoCo v2 head: Linear(d, h) -> ReLU -> Linear(h, out) (no BN)."""

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128):
        super().__init__([(in_dim, hidden_dim, False, True, True, True), (hidden_dim, out_dim, False, False, True, True)])


class MoCoV3Projector(MLPHead):
    """MoCo v3 projector [M3]: Linear(no bias)-BN-ReLU-Linear(no bias)-BN(affine=False)."""

    def __init__(self, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256):
        super().__init__([(in_dim, hidden_dim, True, True, False, True), (hidden_dim, out_dim, True, False, False, False)])


class MoCoV3Predictor(MLPHead):
    """MoCo v3 predictor [M3]: Linear-BN-ReLU-Linear."""

    def __init__(self, in_dim: int = 256, hidden_dim: int = 4096, out_dim: int = 256):
        super().__init__([(in_dim, hidden_dim, True, True, False, True), (hidden_dim, out_dim, False, False, False, True)])
