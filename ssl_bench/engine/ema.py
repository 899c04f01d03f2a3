"""EMA of online into target parameters (not BN running statistics), one fused op per pair."""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(pairs: list[tuple[nn.Module, nn.Module]], tau: float) -> None:
    """target <- tau * target + (1 - tau) * online, over parameters only [BYOL 3.1, protocols.md]."""
    for online, target in pairs:
        t = [p.data for p in target.parameters()]
        o = [p.data for p in online.parameters()]
        if len(t) != len(o):
            raise ValueError("EMA pair has mismatched parameter lists")
        torch._foreach_lerp_(t, o, 1.0 - tau)
