"""Batched, on-device multi-view augmentation: uint8 B x C x H x W in, normalized float B x C x S x S out.
A FolderBatch (folder images of different sizes on one canvas) is cropped inside each image's own size.

All randomness of a view is one uniform B x 36 draw from the caller's torch.Generator (reproducible and
resumable); everything after it (`augment_from_uniform`) is a pure tensor function of the pixels and that
draw, so it can be torch.compiled or captured in a CUDA graph. Every op is a batched tensor op (see
augment_ops.py). Order [BYOL Table 6]: crop + resize, flip, color jitter, grayscale, gaussian blur, solarize,
clip, normalize.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ssl_bench.data import augment_ops as ops
from ssl_bench.data.augment_recipe import SUPERVISED_VIEW, ViewRecipe, blur_kernel_size
from ssl_bench.data.view_params import (UNIFORM_COLUMNS, ViewParams, draw_uniforms, group_structure, same_pass,
                                        sample_view_params, view_params_from_uniform)
from ssl_bench.data.types import FolderBatch

__all__ = ["ViewRecipe", "ViewParams", "SUPERVISED_VIEW", "UNIFORM_COLUMNS", "draw_uniforms",
           "view_params_from_uniform", "sample_view_params", "apply_view", "augment_from_uniform", "random_view",
           "MultiViewAugment", "view_groups", "eval_transform", "folder_eval_view", "adapt_channels",
           "blur_kernel_size"]

_BRIGHTNESS, _CONTRAST, _SATURATION, _HUE = range(4)  # jitter op ids in ViewParams.order


def _jitter_plan(recipe: ViewRecipe, enabled: Sequence[bool]) -> tuple[tuple[int, ...], int, tuple]:
    """The order positions of the blend passes, how many run before hue, and which passes are active for each
    position of hue in a sample's order (4 x passes; empty: all are). Hue is the only op that is not a blend,
    so it runs once on the batch: first the blends ordered before each sample's hue (positions 0-2), then hue,
    then the rest (1-3). In torchvision's fixed order only the enabled blends run, all before hue."""
    if not any(enabled[:3]):
        return (), 0, ()
    if not recipe.jitter_random_order:
        positions = tuple(k for k in range(3) if enabled[k])
        return positions, len(positions), ()
    if not enabled[_HUE]:
        return (0, 1, 2, 3), 4, ()
    before, after = (0, 1, 2), (1, 2, 3)
    active = tuple(tuple(h > k for k in before) + tuple(h < k for k in after) for h in range(4))
    return before + after, len(before), active


def _blend_table(recipe: ViewRecipe, enabled: Sequence[bool]) -> tuple[tuple[bool, ...], ...]:
    """Per op (b, c, s, h): which of the blend coefficients (scale, gray_w, mean_w, shift, lo, hi) take the op's
    value (see ops.blend_pass)."""
    additive = recipe.brightness_mode == "additive"
    rows = ((not additive, False, False, additive, True, True),  # brightness: factor, or additive delta
            (True, False, True, False, True, True),  # contrast: f*x + (1-f)*mean(gray)
            (True, True, False, False, True, True),  # saturation: f*x + (1-f)*gray
            (False,) * 6)  # hue is not a blend
    return tuple(row if on else (False,) * 6 for row, on in zip(rows, enabled))


def _color_jitter(x: torch.Tensor, p: ViewParams, recipe: ViewRecipe) -> torch.Tensor:
    """Color jitter of flat images B x C x N, each sample's 4 ops in its own order. The coefficients of every
    blend pass of every sample come from one small B x passes x 6 computation; then each pass is a few
    whole-batch ops (ops.blend_pass)."""
    rgb = x.shape[1] == 3  # saturation and hue are no-ops on 1-channel images (torchvision)
    enabled = (recipe.brightness > 0, recipe.contrast > 0, rgb and recipe.saturation > 0, rgb and recipe.hue > 0)
    positions, n_before, active = _jitter_plan(recipe, enabled)
    if positions:
        dev = x.device
        op = ops.const(positions, dev, torch.long)
        if recipe.jitter_random_order:
            op = p.order.index_select(1, op)
            f = p.factors.gather(1, op)
        else:
            f = p.factors.index_select(1, op)
        on = p.jitter.unsqueeze(1)
        if active:  # B x passes: before or after this sample's hue
            on = ops.const(active, dev, torch.bool)[p.order.argmax(1)] & on
        mask = ops.const(_blend_table(recipe, enabled), dev, torch.bool)[op] & on.unsqueeze(-1)
        value = torch.addcmul(ops.const((0.0, 1.0, 1.0, 0.0, 0.0, 1.0), dev), f.unsqueeze(-1),
                              ops.const((1.0, -1.0, -1.0, 1.0, 0.0, 0.0), dev))  # f, 1-f, 1-f, f, 0, 1
        idle = ops.const((1.0, 0.0, 0.0, 0.0, -math.inf, math.inf), dev)  # identity, no clamp
        coef = torch.where(mask, value, idle)  # B x passes x 6: scale, gray_w, mean_w, shift, lo, hi
        cols = coef.transpose(0, 1).unsqueeze(-1)  # passes x B x 6 x 1: each pass's tensors, one unbind away
        eye, gray_rows = ops.gray_mix(x.shape[1], dev)
        mix = torch.addcmul(cols[:, :, 0:1] * eye, cols[:, :, 1:2], gray_rows).unbind(0)
        mean_w = (cols[:, :, 2:3] * ops.luma(x.shape[1], dev)).unbind(0) if enabled[_CONTRAST] else None
        bounds = cols[:, :, 3:].unsqueeze(-1).unbind(0)
    for i in range(len(positions) + 1):
        if i == n_before and enabled[_HUE]:
            x = ops.adjust_hue(x, p.factors[:, _HUE], p.jitter)
        if i < len(positions):
            x = ops.blend_pass(x, mix[i], None if mean_w is None else mean_w[i], bounds[i])
    return x


def _stat(values, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)


def _normalizer(mean, std, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(1/std, -mean/std) as 1 x C x 1 x 1: normalization as one multiply-add."""
    if isinstance(mean, torch.Tensor) or isinstance(std, torch.Tensor):
        m, s = (torch.as_tensor(t, dtype=torch.float32, device=device).view(1, -1, 1, 1) for t in (mean, std))
        return 1 / s, -m / s
    m, s = [float(a) for a in mean], [float(a) for a in std]
    return (ops.const(tuple(1 / b for b in s), device).view(1, -1, 1, 1),
            ops.const(tuple(-a / b for a, b in zip(m, s)), device).view(1, -1, 1, 1))


def _apply(images_uint8: torch.Tensor, params: ViewParams, recipe: ViewRecipe, out_size: int,
           norm_scale: torch.Tensor, norm_shift: torch.Tensor) -> torch.Tensor:
    flip = params.flip if recipe.flip_p > 0 else None
    x = ops.resized_crop_flip(images_uint8, params.top, params.left, params.height, params.width, flip, out_size,
                              recipe.interpolation, scale=1 / 255)
    b, c = x.shape[:2]
    flat = x.view(b, c, -1)  # the per-pixel ops see pixels as one axis (fewer views per op)
    if recipe.jitter_p > 0:
        flat = _color_jitter(flat, params, recipe)
    if recipe.grayscale_p > 0 and c == 3:
        keep, gray = ops.gray_mix(3, x.device)
        flat = torch.bmm(torch.where(params.grayscale.view(-1, 1, 1), gray, keep), flat)
    x = flat.view(b, c, out_size, out_size)
    if recipe.blur_p > 0:
        x = ops.gaussian_blur(x, ops.gaussian_kernels(params.sigma, params.blur, blur_kernel_size(recipe, out_size)))
    if recipe.solarize_p > 0:
        x = ops.solarize(x, recipe.solarize_threshold, params.solarize)
    return ops.clip_normalize(x, norm_scale, norm_shift)


def apply_view(images_uint8: torch.Tensor, params: ViewParams, recipe: ViewRecipe, out_size: int,
               mean, std) -> torch.Tensor:
    """One augmented, normalized float32 view B x C x out_size x out_size of a uint8 batch."""
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
        raise ValueError("apply_view expects a uint8 B x C x H x W batch")
    return _apply(images_uint8, params, recipe, out_size, *_normalizer(mean, std, images_uint8.device))


def augment_from_uniform(images_uint8: torch.Tensor, u: torch.Tensor, recipe: ViewRecipe, out_size: int,
                         norm_scale: torch.Tensor, norm_shift: torch.Tensor, in_h: int | torch.Tensor,
                         in_w: int | torch.Tensor, recipes: tuple[ViewRecipe, ...] | None = None) -> torch.Tensor:
    """The pure part of one view (no generator): apply_view(view_params_from_uniform(u, ...)), normalized as
    x * norm_scale + norm_shift (1 x C x 1 x 1: 1/std and -mean/std). What MultiViewAugment(compile=True)
    compiles; with fixed shapes it is also capturable in a CUDA graph (no host syncs).

    `recipes`: k views of one size built in one pass (`recipe` = group_structure(recipes)); u holds their draws
    view after view, and the result their k * B images in that order."""
    params = view_params_from_uniform(u, recipe, in_h, in_w, recipes)
    return _apply(images_uint8, params, recipe, out_size, norm_scale, norm_shift)


def view_groups(sizes: Sequence[int], recipes: Sequence[ViewRecipe]) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive views with one output size whose recipes differ only in what a
    pass holds per row (augment_recipe.same_pass): each is built in one pass."""
    groups: list[tuple[int, int]] = []
    for i, (size, recipe) in enumerate(zip(sizes, recipes)):
        if groups and sizes[groups[-1][0]] == size and same_pass(recipes[groups[-1][0]], recipe):
            groups[-1] = (groups[-1][0], i + 1)
        else:
            groups.append((i, i + 1))
    return groups


class MultiViewAugment:
    """One normalized view per recipe, in recipe order, each of its recipe's output size (ViewRecipe.size_frac
    of `out_size`, the run's image size, or its size_px): multi-crop's global and local crops. Consecutive views
    of one size (and one structure: same_pass) are built in one pass over the batch (view_groups). Blur is off
    when the image size is <= 32 unless blur_small_images (CIFAR recipes drop it: solo-learn, SimCLR CIFAR).

    compile: torch.compile(dynamic=False) the pure part of each pass (augment_from_uniform), one compiled
    function per group of views, used for uint8 tensor batches (it specializes on their shape: a smaller last
    batch compiles once more). FolderBatch canvases change size batch to batch, so they stay eager.
    view_fns[g](pixels, u, norm_scale, norm_shift, in_h, in_w) is group g's pure function (compiled or not)."""

    def __init__(self, recipes: Sequence[ViewRecipe], out_size: int, mean, std, blur_small_images: bool = False,
                 compile: bool = False):
        small = out_size <= 32 and not blur_small_images
        self.recipes = tuple(replace(r, blur_p=0.0) if small else r for r in recipes)
        self.out_size = out_size
        self.sizes = tuple(r.out_size(out_size) for r in self.recipes)
        self.groups = view_groups(self.sizes, self.recipes)
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.compile = compile
        self._eager = [self._group_fn(*g) for g in self.groups]
        self.view_fns: list[Callable[..., torch.Tensor]] = (
            [torch.compile(f, dynamic=False) for f in self._eager] if compile else self._eager)

    def _group_fn(self, start: int, end: int) -> Callable[..., torch.Tensor]:
        group = self.recipes[start:end]
        structure, out_size = group_structure(group), self.sizes[start]
        recipes = group if len(group) > 1 else None

        def views(images_uint8, u, norm_scale, norm_shift, in_h, in_w):
            return augment_from_uniform(images_uint8, u, structure, out_size, norm_scale, norm_shift, in_h, in_w,
                                        recipes)

        return views

    def __call__(self, images: torch.Tensor | FolderBatch, generator: torch.Generator) -> list[torch.Tensor]:
        pixels, (h, w) = _pixels_and_sizes(images)
        if pixels.dtype != torch.uint8 or pixels.dim() != 4:
            raise ValueError("MultiViewAugment expects a uint8 B x C x H x W batch")
        scale, shift = _normalizer(self.mean, self.std, pixels.device)
        fns = self._eager if isinstance(images, FolderBatch) else self.view_fns
        out: list[torch.Tensor] = []
        for fn, (start, end) in zip(fns, self.groups):
            # one draw per view, in recipe order: the generator advances as it always has
            draws = [draw_uniforms(len(pixels), generator, pixels.device) for _ in range(start, end)]
            u = draws[0] if len(draws) == 1 else torch.cat(draws)
            out.extend(fn(pixels, u, scale, shift, h, w).chunk(end - start))
        return out


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
