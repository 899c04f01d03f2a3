"""Each head's layers, written out by hand from the papers, against what the named blocks build."""
from __future__ import annotations

import pytest
from torch import nn

from ssl_bench.heads import BYOLHead, MoCoV2Head, MoCoV3Predictor, MoCoV3Projector, SimCLRHead


def _describe(m: nn.Module) -> list[tuple]:
    out = []
    for layer in m:
        if isinstance(layer, nn.Linear):
            out.append(("linear", layer.in_features, layer.out_features, layer.bias is not None))
        elif isinstance(layer, nn.BatchNorm1d):
            out.append(("bn", layer.num_features, layer.affine))
        else:
            out.append((type(layer).__name__.lower(),))
    return out


@pytest.mark.parametrize("head, expected", [
    # [BYOL 3.3]: Linear(d, h) -> BN -> ReLU -> Linear(h, out)
    # [DM utils/networks.py:41-44]: hk.Linear(with_bias=True), BN, relu, hk.Linear(with_bias=False)
    (BYOLHead(8, 16, 4), [("linear", 8, 16, True), ("bn", 16, True), ("relu",), ("linear", 16, 4, False)]),
    (BYOLHead(8, 16, 4, last_bias=True), [("linear", 8, 16, True), ("bn", 16, True), ("relu",),
                                          ("linear", 16, 4, True)]),  # solo-learn's and lightly's
    (SimCLRHead(8, 16, 4), [("linear", 8, 16, True), ("bn", 16, True), ("relu",), ("linear", 16, 4, True)]),
    # MoCo v2: no BN in the head
    (MoCoV2Head(8, 16, 4), [("linear", 8, 16, True), ("relu",), ("linear", 16, 4, True)]),
    # [M3 builder.py]: no biases; the projector ends in BN without affine parameters
    (MoCoV3Projector(8, 16, 4), [("linear", 8, 16, False), ("bn", 16, True), ("relu",), ("linear", 16, 4, False),
                                 ("bn", 4, False)]),
    (MoCoV3Predictor(4, 16, 4), [("linear", 4, 16, False), ("bn", 16, True), ("relu",), ("linear", 16, 4, False)]),
])
def test_head_layers_match_the_papers(head, expected):
    assert _describe(head) == expected
