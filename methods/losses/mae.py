"""MAE's reconstruction loss [MAE models_mae.py L95-107, L198-214]: mean squared error on the removed patches
only, against per-patch normalised pixels (`norm_pix_loss`, the setting of every reported run [MAE PRETRAIN.md])."""
from __future__ import annotations

import torch


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, (H/p)(W/p), p * p * C): patches in raster order, each flattened as (row, col, channel)
    [MAE models_mae.py L95-107]."""
    b, c, h, w = images.shape
    if h % patch or w % patch:
        raise ValueError(f"images of {h}x{w} px do not split into {patch}x{patch} patches")
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def mae_loss(pred: torch.Tensor, target: torch.Tensor, masked: torch.Tensor, norm_pix: bool = True,
             eps: float = 1e-6) -> torch.Tensor:
    """sum over removed patches of mean_k (pred - t)^2, divided by the number of removed patches.

    pred, target: (B, N, K) predicted and true patch pixels (patchify); masked: (B, N), 1 where removed.
    norm_pix: t = (target - mean) / sqrt(var + eps) per patch, var the unbiased variance of its K pixels.
    """
    if norm_pix:
        target = (target - target.mean(dim=-1, keepdim=True)) / (target.var(dim=-1, keepdim=True) + eps).sqrt()
    per_patch = (pred - target.detach()).pow(2).mean(dim=-1)
    masked = masked.to(per_patch.dtype)
    return (per_patch * masked).sum() / masked.sum()
