"""I-JEPA's latent regression loss [IJ src/train.py L295-313]: smooth L1 (beta 1, mean over every element)
between the predictor's outputs and the target encoder's tokens at the target blocks, each token layer-normed
over its features (no affine) after the encoder's own final norm."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ijepa_targets(tokens: torch.Tensor, target_idx: torch.Tensor) -> torch.Tensor:
    """(B, N, D) target-encoder patch tokens, (B, M, n_t) target indices -> (B, M, n_t, D) layer-normed targets,
    without gradient."""
    with torch.no_grad():
        h = F.layer_norm(tokens, (tokens.shape[-1],))
        b, m, n_t = target_idx.shape
        idx = target_idx.reshape(b, m * n_t, 1).expand(-1, -1, h.shape[-1])
        return h.gather(1, idx).reshape(b, m, n_t, -1)


def ijepa_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean over elements of smooth_l1(pred - sg(target)), beta 1: 0.5 d^2 where |d| < 1, else |d| - 0.5."""
    return F.smooth_l1_loss(pred, target.detach())
