"""Batched, on-device multi-view augmentation: uint8 B x C x H x W in, normalized float B x C x S x S out.
A FolderBatch (folder images of different sizes on one canvas) is cropped inside each image's own size.

All randomness is drawn per sample as one tensor from the caller's torch.Generator (reproducible and
resumable); every op is a batched tensor op (see augment_ops.py). Order [BYOL Table 6]: crop + resize,
flip, color jitter, grayscale, gaussian blur, solarize, clip, normalize.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import torch
import torch.nn.functional as F

from . import augment_ops as ops
from .augment_recipe import SUPERVISED_VIEW, ViewRecipe, blur_kernel_size
from .types import FolderBatch

__all__ = ["ViewRecipe", "ViewParams", "SUPERVISED_VIEW", "sample_view_params", "apply_view", "random_view",
           "MultiViewAugment", "eval_transform", "folder_eval_view", "adapt_channels", "blur_kernel_size"]

_TRIES = 10  # torchvision RandomResizedCrop's attempts before the center-crop fallback
_BRIGHTNESS, _CONTRAST, _SATURATION, _HUE = range(4)


@dataclass
class ViewParams:
    """Per-sample random parameters of one view (all tensors of leading size B)."""

    top: torch.Tensor  # long: crop window in input pixels
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    flip: torch.Tensor  # bool
    jitter: torch.Tensor  # bool: color jitter applied
    factors: torch.Tensor  # float B x 4: brightness (factor or additive delta), contrast, saturation, hue
    order: torch.Tensor  # long B x 4: op id (0 b, 1 c, 2 s, 3 h) at each position
    grayscale: torch.Tensor  # bool
    blur: torch.Tensor  # bool
    sigma: torch.Tensor  # float
    solarize: torch.Tensor  # bool


def _uniform(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * u


def _per_image(size: int | torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """A size for every image of the batch, as a long tensor on u's device (a fill, not a host copy)."""
    if isinstance(size, torch.Tensor):
        return size.to(u.device, torch.long).expand(u.shape[0])
    return torch.full((u.shape[0],), int(size), device=u.device, dtype=torch.long)


def _sample_crops(u: torch.Tensor, recipe: ViewRecipe, in_h: int | torch.Tensor,
                  in_w: int | torch.Tensor) -> tuple[torch.Tensor, ...]:
    """RandomResizedCrop.get_params, vectorized: the first of 10 tries that fits, else a center crop.
    `in_h`, `in_w`: the image size, one for the batch or one per image (B-long tensors: folder images)."""
    in_h, in_w = _per_image(in_h, u), _per_image(in_w, u)
    area = (in_h * in_w).unsqueeze(1)
    frac = _uniform(u[:, :_TRIES], *recipe.crop_scale)
    log_lo, log_hi = math.log(recipe.crop_ratio[0]), math.log(recipe.crop_ratio[1])
    ratio = torch.exp(_uniform(u[:, _TRIES:2 * _TRIES], log_lo, log_hi))
    w = torch.round(torch.sqrt(area * frac * ratio)).long()
    h = torch.round(torch.sqrt(area * frac / ratio)).long()
    fits = (w > 0) & (w <= in_w.unsqueeze(1)) & (h > 0) & (h <= in_h.unsqueeze(1))
    tries = torch.arange(_TRIES, device=u.device)
    first = torch.where(fits, tries, _TRIES).amin(1, keepdim=True).clamp(max=_TRIES - 1)
    found = fits.any(1)
    in_ratio = in_w.double() / in_h.double()
    too_tall, too_wide = in_ratio < recipe.crop_ratio[0], in_ratio > recipe.crop_ratio[1]
    fw = torch.where(too_wide, torch.round(in_h.double() * recipe.crop_ratio[1]).long(), in_w)
    fh = torch.where(too_tall, torch.round(in_w.double() / recipe.crop_ratio[0]).long(), in_h)
    h = torch.where(found, h.gather(1, first).squeeze(1), fh)
    w = torch.where(found, w.gather(1, first).squeeze(1), fw)
    top = torch.where(found, torch.minimum((u[:, 2 * _TRIES] * (in_h - h + 1)).long(), in_h - h), (in_h - fh) // 2)
    left = torch.where(found, torch.minimum((u[:, 2 * _TRIES + 1] * (in_w - w + 1)).long(), in_w - w),
                       (in_w - fw) // 2)
    return top, left, h, w


def sample_view_params(recipe: ViewRecipe, batch_size: int, in_h: int | torch.Tensor, in_w: int | torch.Tensor,
                       generator: torch.Generator, device: torch.device | str) -> ViewParams:
    """Draw every per-sample parameter of one view from one uniform tensor (fixed layout, so the
    generator advances by the same amount whatever the recipe). `in_h`, `in_w`: ints, or per-image sizes."""
    u = torch.rand(batch_size, 2 * _TRIES + 16, generator=generator, device=generator.device).to(device)
    c = 2 * _TRIES + 2  # columns after the crop's
    top, left, h, w = _sample_crops(u, recipe, in_h, in_w)
    b = recipe.brightness
    bright = _uniform(u[:, c + 2], -b, b) if recipe.brightness_mode == "additive" \
        else _uniform(u[:, c + 2], max(0.0, 1 - b), 1 + b)
    factors = torch.stack([
        bright,
        _uniform(u[:, c + 3], max(0.0, 1 - recipe.contrast), 1 + recipe.contrast),
        _uniform(u[:, c + 4], max(0.0, 1 - recipe.saturation), 1 + recipe.saturation),
        _uniform(u[:, c + 5], -recipe.hue, recipe.hue)], dim=1)
    if recipe.jitter_random_order:
        order = torch.argsort(u[:, c + 6:c + 10], dim=1)
    else:  # torchvision's fixed order
        order = torch.arange(4, device=u.device).expand(batch_size, 4)
    return ViewParams(
        top=top, left=left, height=h, width=w,
        flip=u[:, c] < recipe.flip_p, jitter=u[:, c + 1] < recipe.jitter_p, factors=factors, order=order,
        grayscale=u[:, c + 10] < recipe.grayscale_p,
        blur=u[:, c + 11] < recipe.blur_p, sigma=_uniform(u[:, c + 12], *recipe.blur_sigma),
        solarize=u[:, c + 13] < recipe.solarize_p)


def _jitter_position(x: torch.Tensor, k: int, p: ViewParams, recipe: ViewRecipe, enabled: Sequence[bool],
                     active: torch.Tensor) -> torch.Tensor:
    """Apply, for each `active` sample, the blend op (brightness/contrast/saturation) at position k."""
    op = p.order[:, k]
    f = p.factors.gather(1, op.unsqueeze(1)).squeeze(1)
    is_b, is_c, is_s = (active & (op == i) if enabled[i] else torch.zeros_like(active)
                        for i in (_BRIGHTNESS, _CONTRAST, _SATURATION))
    additive = recipe.brightness_mode == "additive"
    scaled = is_c | is_s if additive else is_b | is_c | is_s
    return ops.blend_pass(
        x, scale=torch.where(scaled, f, 1.0),
        gray_w=torch.where(is_s, 1 - f, 0.0) if enabled[_SATURATION] else None,
        mean_w=torch.where(is_c, 1 - f, 0.0) if enabled[_CONTRAST] else None,
        shift=torch.where(is_b, f, 0.0) if additive and enabled[_BRIGHTNESS] else None,
        clamp=is_b | is_c | is_s)


def _color_jitter(x: torch.Tensor, p: ViewParams, recipe: ViewRecipe) -> torch.Tensor:
    """Per-sample random order of the 4 jitter ops. Hue is the only op that is not a blend, so it runs
    once on the batch: first the blends ordered before each sample's hue, then hue, then the rest."""
    rgb = x.shape[1] == 3  # saturation and hue are no-ops on 1-channel images (torchvision)
    enabled = (recipe.brightness > 0, recipe.contrast > 0, rgb and recipe.saturation > 0, rgb and recipe.hue > 0)
    if not any(enabled):
        return x
    if not enabled[_HUE]:
        for k in range(4):
            x = _jitter_position(x, k, p, recipe, enabled, p.jitter)
        return x
    hue_pos = (p.order == _HUE).long().argmax(1)
    for k in range(3):  # positions before hue (hue is at most at position 3)
        x = _jitter_position(x, k, p, recipe, enabled, p.jitter & (hue_pos > k))
    x = ops.adjust_hue(x, p.factors[:, _HUE], p.jitter)
    for k in range(1, 4):
        x = _jitter_position(x, k, p, recipe, enabled, p.jitter & (hue_pos < k))
    return x


def _stat(values, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)


def apply_view(images_uint8: torch.Tensor, params: ViewParams, recipe: ViewRecipe, out_size: int,
               mean, std) -> torch.Tensor:
    """One augmented, normalized float32 view B x C x out_size x out_size of a uint8 batch."""
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
        raise ValueError("apply_view expects a uint8 B x C x H x W batch")
    x = images_uint8.float() / 255
    flip = params.flip if recipe.flip_p > 0 else None
    x = ops.resized_crop_flip(x, params.top, params.left, params.height, params.width, flip, out_size,
                              recipe.interpolation)
    if recipe.jitter_p > 0:
        x = _color_jitter(x, params, recipe)
    if recipe.grayscale_p > 0 and x.shape[1] == 3:
        x = torch.where(params.grayscale.view(-1, 1, 1, 1), ops.grayscale(x).expand_as(x), x)
    if recipe.blur_p > 0:
        x = ops.gaussian_blur(x, ops.gaussian_kernels(params.sigma, params.blur, blur_kernel_size(recipe, out_size)))
    if recipe.solarize_p > 0:
        x = ops.solarize(x, recipe.solarize_threshold, params.solarize)
    return (x.clamp(0, 1) - _stat(mean, x)) / _stat(std, x)


class MultiViewAugment:
    """One normalized view per recipe. Blur is off at out_size <= 32 unless blur_small_images
    (CIFAR recipes drop it: solo-learn, SimCLR CIFAR)."""

    def __init__(self, recipes: Sequence[ViewRecipe], out_size: int, mean, std, blur_small_images: bool = False):
        small = out_size <= 32 and not blur_small_images
        self.recipes = tuple(replace(r, blur_p=0.0) if small else r for r in recipes)
        self.out_size = out_size
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}  # no host->device copy per step

    def __call__(self, images: torch.Tensor | FolderBatch, generator: torch.Generator) -> list[torch.Tensor]:
        pixels, (h, w) = _pixels_and_sizes(images)
        dev = pixels.device
        if dev not in self._stats:
            self._stats[dev] = (torch.tensor(self.mean, device=dev), torch.tensor(self.std, device=dev))
        mean, std = self._stats[dev]
        return [apply_view(pixels, sample_view_params(r, len(pixels), h, w, generator, dev), r, self.out_size, mean,
                           std) for r in self.recipes]


def _pixels_and_sizes(images: torch.Tensor | FolderBatch) -> tuple[torch.Tensor, tuple]:
    """The uint8 pixels and the size crops are drawn in: the batch's (H, W), or each folder image's own."""
    if isinstance(images, FolderBatch):
        return images.pixels, (images.sizes[:, 0], images.sizes[:, 1])
    return images, tuple(images.shape[-2:])


def random_view(images: torch.Tensor | FolderBatch, recipe: ViewRecipe, out_size: int, mean, std,
                generator: torch.Generator) -> torch.Tensor:
    """One augmented, normalized view of a batch (uint8 tensor or FolderBatch) drawn from `generator`."""
    pixels, (h, w) = _pixels_and_sizes(images)
    params = sample_view_params(recipe, len(pixels), h, w, generator, pixels.device)
    return apply_view(pixels, params, recipe, out_size, mean, std)


def eval_transform(images_uint8: torch.Tensor | FolderBatch, out_size: int, mean, std) -> torch.Tensor:
    """Deterministic test-time view: resize the shorter side to out_size (bilinear, antialiased when
    downscaling), center crop, scale to [0,1], normalize. A FolderBatch: folder_eval_view."""
    if isinstance(images_uint8, FolderBatch):
        return folder_eval_view(images_uint8, out_size, mean, std)
    x = images_uint8.float() / 255
    h, w = x.shape[-2:]
    if min(h, w) != out_size:
        nh, nw = (out_size, int(out_size * w / h)) if h <= w else (int(out_size * h / w), out_size)
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=min(h, w) > out_size)
        h, w = nh, nw
    if (h, w) != (out_size, out_size):  # torchvision center_crop's rounding
        top, left = int(round((h - out_size) / 2.0)), int(round((w - out_size) / 2.0))
        x = x[..., top:top + out_size, left:left + out_size]
    return ((x - _stat(mean, x)) / _stat(std, x)).contiguous()


def folder_eval_view(batch: FolderBatch, out_size: int, mean, std) -> torch.Tensor:
    """Each image's centre square of side int(eval_crop * shorter side), offsets (size - side + 1) // 2,
    resized to out_size bicubically (no antialias, clipped to [0, 1]) and normalized: [DM dataset.py]
    _decode_and_center_crop with eval_crop 224/256, then tf.image.resize BICUBIC and clip."""
    h, w = batch.sizes[:, 0], batch.sizes[:, 1]
    side = (batch.eval_crop * torch.minimum(h, w).float()).long().clamp(min=1)  # float32 product, truncated
    top, left = (h - side + 1) // 2, (w - side + 1) // 2
    x = ops.resized_crop_flip(batch.pixels.float() / 255, top, left, side, side, None, out_size, "bicubic")
    return ((x.clamp(0, 1) - _stat(mean, x)) / _stat(std, x)).contiguous()


def adapt_channels(x: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Match a model's input channels: 1 -> 3 by repeat, 3 -> 1 by luminance (0.299, 0.587, 0.114)."""
    c = x.shape[1]
    if c == in_chans:
        return x
    if c == 1 and in_chans == 3:
        return x.repeat(1, 3, 1, 1)
    if c == 3 and in_chans == 1:
        return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    raise ValueError(f"cannot adapt {c}-channel images to a {in_chans}-channel model")
