"""Batched image ops with per-sample parameters (tensors of length B), float images B x C x H x W.

Each op reproduces the semantics of its torchvision.transforms.v2.functional counterpart on float images
(tests/test_augment.py checks this image by image); none loops over samples in Python, and each is written in
few tensor ops: on CUDA every op is a kernel launch, and at small view sizes the launches, not the arithmetic,
are the cost. Small constant tensors are made once per device (`cached`), not on every call.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

_LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
_CUBIC_A = -0.75  # torch's bicubic (Keys) coefficient
# The 4 bicubic taps sit at floor(src) - 1 ... floor(src) + 2; tap k's distance to src is base + sign * t with
# t = src - floor(src). Taps -1 and 2 lie on the outer piece of Keys' kernel (1 <= d < 2), taps 0 and 1 on the inner.
_TAPS, _TAP_BASE, _TAP_SIGN = (-1, 0, 1, 2), (1.0, 0.0, 1.0, 2.0), (1.0, 1.0, -1.0, -1.0)
_INNER = (_CUBIC_A + 2, -(_CUBIC_A + 3), 0.0, 1.0)  # d^3, d^2, d, 1 coefficients
_OUTER = (_CUBIC_A, -5 * _CUBIC_A, 8 * _CUBIC_A, -4 * _CUBIC_A)
_CUBIC_BY_POWER = tuple(zip(_OUTER, _INNER, _INNER, _OUTER))  # per power: the 4 taps' coefficients
_HUE_SHIFTS = (5.0, 3.0, 1.0)  # HSV -> RGB: channel n in (5, 3, 1) is v - v*s*clamp(min(k, 4-k), 0, 1)

_CACHE: dict = {}
_CACHE_LIMIT = 4096  # keys come from recipes and sizes; a bound keeps a long-lived process from growing it


def cached(key: tuple, device: torch.device, build: Callable[[torch.device], torch.Tensor]) -> torch.Tensor:
    """A constant tensor made once per (key, device). While torch.compile traces, it is built in the graph
    (inductor folds it) instead of being read from this module's state."""
    if torch.compiler.is_compiling():
        return build(torch.device(device))
    t = _CACHE.get((key, device))
    if t is None:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        t = _CACHE[(key, device)] = build(torch.device(device))
    return t


def const(values, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """torch.tensor(values) on `device`, made once (no host-to-device copy per call)."""
    return cached(("const", values, dtype), device, lambda d: torch.tensor(values, dtype=dtype, device=d))


def _sample_positions(out_size: int, device: torch.device) -> torch.Tensor:
    """2 x S: output sample centres j + 0.5, forward and mirrored."""
    fwd = torch.arange(out_size, device=device, dtype=torch.float32) + 0.5
    return torch.stack((fwd, fwd.flip(0)))


def resize_weights(offset: torch.Tensor, length: torch.Tensor, in_size: int, out_size: int, mode: str,
                   flip: torch.Tensor | None = None, scale: torch.Tensor | None = None) -> torch.Tensor:
    """L x out_size x in_size matrices resampling the window [offset, offset+length) to out_size samples, for
    long tensors offset, length of any leading shape L (B, or B x 2 for both axes at once).

    Same sample positions and taps as torch.nn.functional.interpolate(align_corners=False, antialias=False)
    on the cropped window: bilinear clamps negative source coordinates to 0; bicubic clamps taps to the window.
    Where `flip`, output sample j takes the taps of sample out_size-1-j (a mirrored result). `scale`
    (broadcastable to L x 1 x 1) multiplies the weights.
    """
    dev = offset.device
    dst = cached(("resize_dst", out_size), dev, lambda d: _sample_positions(out_size, d))
    dst = dst[0] if flip is None else torch.where(flip.unsqueeze(-1), dst[1], dst[0])
    src = dst * (length.float() / out_size).unsqueeze(-1) - 0.5  # L x S
    last = (length - 1).unsqueeze(-1)
    if mode == "bilinear":
        src = src.clamp(min=0)
        i0 = torch.minimum(src.floor().long(), last)
        lam = (src - i0).clamp(0, 1).unsqueeze(-1)
        idx = torch.stack((i0, i0 + (i0 < last)), -1)
        w = torch.addcmul(const((1.0, 0.0), dev), lam, const((-1.0, 1.0), dev))  # 1 - lam, lam
    elif mode == "bicubic":
        i0 = src.floor()
        d = torch.addcmul(const(_TAP_BASE, dev), (src - i0).unsqueeze(-1), const(_TAP_SIGN, dev))
        c3, c2, c1, c0 = (const(c, dev) for c in _CUBIC_BY_POWER)
        w = torch.addcmul(c0, torch.addcmul(c1, torch.addcmul(c2, c3, d), d), d)  # Horner, per tap's piece
        idx = torch.minimum((i0.long().unsqueeze(-1) + const(_TAPS, dev, torch.long)).clamp_(min=0),
                            last.unsqueeze(-1))
    else:
        raise ValueError(f"unknown interpolation {mode!r}")
    # Taps clamped onto the same pixel (at the window's ends) each carry their run's summed weight and are
    # written, not added: equal values, so the matrix is bitwise the same in whatever order CUDA writes them.
    w = ((idx.unsqueeze(-1) == idx.unsqueeze(-2)) * w.unsqueeze(-2)).sum(-1)
    if scale is not None:
        w = w * scale
    out = torch.zeros(*length.shape, out_size, in_size, device=dev, dtype=torch.float32)
    return out.scatter_(-1, idx + offset.view(*offset.shape, 1, 1), w)


def resized_crop_flip(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: torch.Tensor,
                      width: torch.Tensor, flip: torch.Tensor | None, out_size: int, mode: str,
                      scale: float = 1.0) -> torch.Tensor:
    """Per-sample crop + resize (+ horizontal flip) as out = scale * Wy @ x @ Wx^T (two batched matmuls).
    x may be uint8: with scale 1/255 the conversion to [0, 1] rides on the small Wy instead of the image.

    The windows may be k per image (k * B of them, view-major: rows j * B + i crop image i): k views of one
    size in one pass, the image converted to float once and read by one matmul for all k windows (its N axis
    holds the k views' columns), so it is never copied k times."""
    b, c, h, w = x.shape
    dev = x.device
    k = len(top) // b
    along = None if flip is None else flip.unsqueeze(1) & const((False, True), dev, torch.bool)  # x axis only
    axis_scale = None if scale == 1.0 else const((scale, 1.0), dev).view(2, 1, 1)
    m = resize_weights(torch.stack((top, left), 1), torch.stack((height, width), 1), max(h, w), out_size, mode,
                       along, axis_scale)  # kB x 2 x S x max(H, W): both axes in one set of ops
    wy, wx = m[:, 0, :, :h], m[:, 1, :, :w]
    if k == 1:
        rows = torch.bmm(x.float().reshape(b, c * h, w), wx.transpose(1, 2)).view(b, c, h, out_size)
        return torch.matmul(wy.unsqueeze(1), rows)
    wx_all = wx.view(k, b, out_size, w).permute(1, 3, 0, 2).reshape(b, w, k * out_size)  # B x W x kS
    rows = torch.bmm(x.float().reshape(b, c * h, w), wx_all).view(b, c, h, k, out_size)
    rows = rows.permute(3, 0, 1, 2, 4)  # k x B x C x H x S
    return torch.matmul(wy.view(k, b, 1, out_size, h), rows).reshape(k * b, c, out_size, out_size)


def luma(channels: int, device: torch.device | str) -> torch.Tensor:
    """The grayscale weights of a `channels`-channel image (1 channel: the image itself)."""
    if channels not in (1, 3):
        raise ValueError(f"grayscale needs 1- or 3-channel images, not {channels}")
    return const(_LUMA if channels == 3 else (1.0,), device)


def gray_mix(channels: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """(identity, rows all luma): C x C channel-mixing matrices that keep a pixel or make it gray."""
    def build(d: torch.device) -> torch.Tensor:
        return torch.stack((torch.eye(channels, device=d), luma(channels, d).expand(channels, channels)))

    return cached(("gray_mix", channels), device, build).unbind(0)


def blend_pass(x: torch.Tensor, mix: torch.Tensor, mean_w: torch.Tensor | None,
               bounds: torch.Tensor) -> torch.Tensor:
    """x <- clamp(mix @ x + mean_w @ mean(x) + shift, lo, hi) per sample, on flat images x B x C x N;
    mix B x C x C, mean_w B x 1 x C or None (no contrast anywhere), bounds B x 3 x 1 x 1 (shift, lo, hi).

    torchvision's brightness, contrast and saturation are all of the form scale*x + gray_w*gray(x) +
    mean_w*mean(gray(x)) + shift, clamped: mix = scale*I + gray_w * (rows of luma), and the mean of the gray
    image is luma . (the channel means). So one pass covers whichever of them each sample applies at this
    position of its jitter order; a sample that applies none has mix I, no shift and bounds -inf, inf.
    """
    shift, lo, hi = bounds.unbind(1)
    term = shift if mean_w is None else torch.baddbmm(shift, mean_w, x.mean(2, keepdim=True))
    return torch.baddbmm(term, mix, x).clamp_(lo, hi)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Rotate hue by factor (B, in [-0.5, 0.5]) where `apply`, through HSV as torchvision's adjust_hue;
    x is B x 3 x ... (images, or flat B x 3 x N)."""
    def per_sample(t: torch.Tensor, dims: int) -> torch.Tensor:
        return t.view(-1, *(1,) * (dims - 1))

    v, top = x.max(1)  # value and its channel; ties go to the first (torchvision tests r, then g)
    delta = v - x.amin(1)
    # 6 * hue = 2 * top + (next - after) / delta, the channels after the top one in r, g, b order
    num = (x.roll(-1, 1) - x.roll(-2, 1)).gather(1, top.unsqueeze(1)).squeeze(1)
    base = torch.add(per_sample(6 * factor, top.dim()), top, alpha=2)
    hue6 = torch.addcdiv(base, num, delta.clamp(min=torch.finfo(x.dtype).tiny))  # flat pixels: num = 0, hue 0
    k = torch.remainder(hue6.unsqueeze(1) + per_sample(const(_HUE_SHIFTS, x.device), x.dim() - 1), 6)
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)
    v = v.unsqueeze(1)
    out = torch.addcmul(v, delta.unsqueeze(1), ramp, value=-1)  # v - v*s*ramp, s = delta / v
    out = torch.where(ramp > 0, out.clamp_(0, 1), v)  # torchvision clamps p, q, t but not v
    return torch.where(per_sample(apply, x.dim()), out, x)


def gaussian_kernels(sigma: torch.Tensor, apply: torch.Tensor, size: int) -> torch.Tensor:
    """B x size normalized 1-D gaussian kernels; a unit impulse (exact identity) where not `apply`."""
    def build(d: torch.device) -> torch.Tensor:  # -pos^2 / 2 and the impulse
        pos = torch.arange(size, device=d, dtype=torch.float32) - (size - 1) / 2
        return torch.stack((-0.5 * pos * pos, (pos == 0).float()))

    half_sq, impulse = cached(("blur", size), sigma.device, build)
    k = torch.exp(half_sq / (sigma * sigma).unsqueeze(1))
    k = k / k.sum(1, keepdim=True)
    return torch.where(apply.unsqueeze(1), k, impulse)


def gaussian_blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Separable per-sample blur with reflect padding (torchvision's gaussian_blur semantics)."""
    b, c, h, w = x.shape
    size = kernels.shape[1]
    pad = size // 2
    weight = kernels.unsqueeze(1).expand(b, c, size).reshape(b * c, size)  # one group per image channel
    y = F.pad(x.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, weight.view(b * c, 1, size, 1), groups=b * c)
    y = F.conv2d(y, weight.view(b * c, 1, 1, size), groups=b * c)
    return y.view(b, c, h, w)


def solarize(x: torch.Tensor, threshold: float, apply: torch.Tensor) -> torch.Tensor:
    limit = torch.where(apply, threshold, float("inf")).view(-1, 1, 1, 1)
    return torch.where(x >= limit, 1.0 - x, x)


def clip_normalize(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """clamp(x, 0, 1) * scale + shift, in place on x (scale = 1/std, shift = -mean/std per channel)."""
    return torch.addcmul(shift, x.clamp_(0, 1), scale)
