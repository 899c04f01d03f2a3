"""Batched image ops with per-sample parameters (tensors of length B), float images B x C x H x W.

Each op reproduces the semantics of its torchvision.transforms.v2.functional counterpart on float images
(tests/test_augment.py checks this image by image); none loops over samples in Python.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
_CUBIC_A = -0.75  # torch's bicubic (Keys) coefficient


def _cubic_weights(t: torch.Tensor) -> torch.Tensor:
    """Weights of taps at offsets -1, 0, 1, 2 for fractional position t (..., 4)."""
    a = _CUBIC_A

    def near(x: torch.Tensor) -> torch.Tensor:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: torch.Tensor) -> torch.Tensor:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return torch.stack((far(t + 1), near(t), near(1 - t), far(2 - t)), dim=-1)


def resize_weights(offset: torch.Tensor, length: torch.Tensor, in_size: int, out_size: int,
                   mode: str, flip: torch.Tensor | None = None) -> torch.Tensor:
    """B x out_size x in_size matrices resampling the window [offset, offset+length) to out_size samples.

    Same sample positions and taps as torch.nn.functional.interpolate(align_corners=False, antialias=False)
    on the cropped window: bilinear clamps negative source coordinates to 0; bicubic clamps taps to the window.
    Where `flip`, output sample j takes the taps of sample out_size-1-j (a mirrored result).
    """
    scale = (length.float() / out_size).unsqueeze(1)
    dst = torch.arange(out_size, device=offset.device, dtype=torch.float32)
    src = (dst + 0.5) * scale - 0.5  # B x S
    last = (length - 1).unsqueeze(1)
    if mode == "bilinear":
        src = src.clamp(min=0)
        i0 = torch.minimum(src.floor().long(), last)
        lam = (src - i0).clamp(0, 1)
        i1 = i0 + (i0 < last).long()
        idx, w = torch.stack((i0, i1), -1), torch.stack((1 - lam, lam), -1)
    elif mode == "bicubic":
        i0 = src.floor()
        w = _cubic_weights(src - i0)
        taps = torch.arange(-1, 3, device=offset.device)
        idx = torch.minimum((i0.long().unsqueeze(-1) + taps).clamp(min=0), last.unsqueeze(-1))
    else:
        raise ValueError(f"unknown interpolation {mode!r}")
    # Taps clamped onto the same pixel (runs at the window's ends): sum their weights in a fixed order
    # into the run's last tap so that scatter_add gets one nonzero term per pixel and stays bitwise
    # deterministic under CUDA's atomic adds.
    w = w.clone()
    for t in range(1, idx.shape[-1]):
        same = idx[..., t] == idx[..., t - 1]
        w[..., t] = torch.where(same, w[..., t] + w[..., t - 1], w[..., t])
        w[..., t - 1] = torch.where(same, 0.0, w[..., t - 1])
    idx = idx + offset.view(-1, 1, 1)
    if flip is not None:  # mirror on the small B x S x taps tensors, not on the B x S x in_size matrix
        f = flip.view(-1, 1, 1)
        idx, w = torch.where(f, idx.flip(1), idx), torch.where(f, w.flip(1), w)
    out = torch.zeros(len(offset), out_size, in_size, device=offset.device, dtype=torch.float32)
    return out.scatter_add_(2, idx, w)


def resized_crop_flip(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: torch.Tensor,
                      width: torch.Tensor, flip: torch.Tensor | None, out_size: int, mode: str) -> torch.Tensor:
    """Per-sample crop + resize (+ horizontal flip) as out = Wy @ x @ Wx^T (two batched matmuls)."""
    b, c, h, w = x.shape
    wy = resize_weights(top, height, h, out_size, mode)  # B x S x H
    wx = resize_weights(left, width, w, out_size, mode, flip)  # B x S x W
    rows = torch.bmm(x.reshape(b, c * h, w), wx.transpose(1, 2)).view(b, c, h, out_size)
    return torch.matmul(wy.unsqueeze(1), rows)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """B x 1 x H x W luminance of RGB images (1-channel images are their own grayscale)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (r * _LUMA[0] + g * _LUMA[1] + b * _LUMA[2]).unsqueeze(1)


def blend_pass(x: torch.Tensor, scale: torch.Tensor, gray_w: torch.Tensor | None, mean_w: torch.Tensor | None,
               shift: torch.Tensor | None, clamp: torch.Tensor) -> torch.Tensor:
    """x <- scale*x + gray_w*gray(x) + mean_w*mean(gray(x)) + shift, clamped to [0,1] where `clamp`.

    One pass covers whichever of brightness (multiplicative or additive), contrast and saturation each
    sample applies at this position of its jitter order; torchvision's ops are all of this form.
    The terms that do not depend on the channel are summed on 1-channel (or B x 1 x 1 x 1) tensors first.
    """
    def col(t: torch.Tensor) -> torch.Tensor:
        return t.view(-1, 1, 1, 1)

    gray = grayscale(x) if gray_w is not None or mean_w is not None else None
    term = col(shift) if shift is not None else torch.zeros_like(col(scale))
    if mean_w is not None:
        term = term + col(mean_w) * gray.mean(dim=(1, 2, 3), keepdim=True)
    if gray_w is not None:
        term = term + col(gray_w) * gray
    out = torch.addcmul(term, x, col(scale))
    lo = torch.where(clamp, 0.0, float("-inf"))
    hi = torch.where(clamp, 1.0, float("inf"))
    return out.clamp_(col(lo), col(hi))


def adjust_hue(x: torch.Tensor, factor: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Rotate hue by factor (B, in [-0.5, 0.5]) where `apply`, through HSV as torchvision's adjust_hue."""
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    delta = maxc - minc
    flat = delta == 0
    sat = delta / torch.where(flat, torch.ones_like(maxc), maxc)
    d = torch.where(flat, torch.ones_like(delta), delta)
    h6 = torch.where(maxc == r, (g - b) / d, torch.where(maxc == g, (b - r) / d + 2, (r - g) / d + 4))
    hue = torch.remainder(h6 / 6 + factor.view(-1, 1, 1), 1.0) * 6
    # HSV -> RGB: channel n in (5, 3, 1) is v - v*s*clamp(min(k, 4-k), 0, 1), k = (n + 6h) mod 6
    n = 5.0 - 2.0 * torch.arange(3, device=x.device, dtype=x.dtype)  # 5, 3, 1 without a host copy
    k = torch.remainder(n.view(1, 3, 1, 1) + hue.unsqueeze(1), 6)
    ramp = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    v, s = maxc.unsqueeze(1), sat.unsqueeze(1)
    out = v - v * s * ramp
    out = torch.where(ramp > 0, out.clamp(0, 1), v)  # torchvision clamps p, q, t but not v
    return torch.where(apply.view(-1, 1, 1, 1), out, x)


def gaussian_kernels(sigma: torch.Tensor, apply: torch.Tensor, size: int) -> torch.Tensor:
    """B x size normalized 1-D gaussian kernels; a unit impulse (exact identity) where not `apply`."""
    pos = torch.arange(size, device=sigma.device, dtype=torch.float32) - (size - 1) / 2
    k = torch.exp(-0.5 * (pos / sigma.view(-1, 1)) ** 2)
    k = k / k.sum(1, keepdim=True)
    impulse = (pos == 0).float().expand_as(k)
    return torch.where(apply.view(-1, 1), k, impulse)


def gaussian_blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Separable per-sample blur with reflect padding (torchvision's gaussian_blur semantics)."""
    b, c, h, w = x.shape
    size = kernels.shape[1]
    pad = size // 2
    weight = kernels.repeat_interleave(c, dim=0)  # (B*C) x size, one group per image channel
    y = F.pad(x.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, weight.view(b * c, 1, size, 1), groups=b * c)
    y = F.conv2d(y, weight.view(b * c, 1, 1, size), groups=b * c)
    return y.view(b, c, h, w)


def solarize(x: torch.Tensor, threshold: float, apply: torch.Tensor) -> torch.Tensor:
    return torch.where(apply.view(-1, 1, 1, 1) & (x >= threshold), 1.0 - x, x)
