"""ViewParams: the per-sample draw of one view's random parameters for a batch: one uniform B x UNIFORM_COLUMNS
draw from the caller's generator, then a pure function of it (so augmentation is reproducible, resumable and
compilable); and which views can share one augmentation pass (multi-crop)."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ssl_bench.data import augment_ops as ops
from ssl_bench.data.augment_recipe import SIZE_DEFAULTS, ViewRecipe

_TRIES = 10  # torchvision RandomResizedCrop's attempts before the center-crop fallback
# Columns of a view's uniform draw, a fixed layout (the generator advances the same whatever the recipe):
# 10 crop area fractions, 10 log aspect ratios, top, left, flip, jitter, 4 jitter factors (b, c, s, h),
# 4 jitter order keys, grayscale, blur, blur sigma, solarize.
UNIFORM_COLUMNS = 2 * _TRIES + 16
_FRAC, _LOG_RATIO, _TOP_LEFT = slice(0, _TRIES), slice(_TRIES, 2 * _TRIES), slice(20, 22)
_FLIP, _JITTER, _FACTORS, _ORDER = 22, 23, slice(24, 28), slice(28, 32)
_GRAY, _BLUR, _SIGMA, _SOLARIZE = 32, 33, 34, 35


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


def draw_uniforms(batch_size: int, generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """The one generator call of a view: B x UNIFORM_COLUMNS uniforms, drawn on the generator's device."""
    return torch.rand(batch_size, UNIFORM_COLUMNS, generator=generator, device=generator.device).to(device)


def _uniform_map(recipe: ViewRecipe) -> list[list[float]]:
    """Per column: span and low end mapping u to U[lo, hi] (identity where unused), and the probability a flag
    column is compared with. As lo + (hi - lo) * u in float32, the same numbers as scalar ops would give."""
    span, low, prob = [1.0] * UNIFORM_COLUMNS, [0.0] * UNIFORM_COLUMNS, [0.0] * UNIFORM_COLUMNS

    def put(cols, lo: float, hi: float) -> None:
        for c in cols:
            span[c], low[c] = hi - lo, lo

    put(range(_TRIES), *recipe.crop_scale)
    put(range(_TRIES, 2 * _TRIES), math.log(recipe.crop_ratio[0]), math.log(recipe.crop_ratio[1]))
    b, c, s, h = recipe.brightness, recipe.contrast, recipe.saturation, recipe.hue
    bright = (-b, b) if recipe.brightness_mode == "additive" else (max(0.0, 1 - b), 1 + b)
    for col, (lo, hi) in zip(range(_FACTORS.start, _FACTORS.stop),
                             (bright, (max(0.0, 1 - c), 1 + c), (max(0.0, 1 - s), 1 + s), (-h, h))):
        put([col], lo, hi)
    put([_SIGMA], *recipe.blur_sigma)
    for col, p in ((_FLIP, recipe.flip_p), (_JITTER, recipe.jitter_p), (_GRAY, recipe.grayscale_p),
                   (_BLUR, recipe.blur_p), (_SOLARIZE, recipe.solarize_p)):
        prob[col] = p
    return [span, low, prob]


def _fallback_size(recipe: ViewRecipe, in_h, in_w):
    """torchvision's center-crop fallback size (ints, or B-long tensors), clipped to the ratio range."""
    r0, r1 = recipe.crop_ratio
    if isinstance(in_h, int):
        ratio = in_w / in_h
        return (round(in_w / r0) if ratio < r0 else in_h), (round(in_h * r1) if ratio > r1 else in_w)
    ratio = in_w.double() / in_h.double()
    return (torch.where(ratio < r0, torch.round(in_w.double() / r0).long(), in_h),
            torch.where(ratio > r1, torch.round(in_h.double() * r1).long(), in_w))


def _clamped_windows(u: torch.Tensor, v: torch.Tensor, in_h, in_w):
    """DeepMind's crop [DM utils/dataset.py:206-233]: the first (area, ratio) draw only, w = round(sqrt(area *
    ratio)) and h = round(sqrt(area / ratio)) clamped to the image, offsets uniform over the room left."""
    if isinstance(in_h, int):
        limit, area = ops.const((in_h, in_w), u.device, torch.long), in_h * in_w
    else:
        limit, area = torch.stack((in_h, in_w), 1), in_h * in_w
    scaled, ratio = area * v[:, _FRAC.start], v[:, _LOG_RATIO.start].exp()
    size = torch.stack((scaled / ratio, scaled * ratio), 1).sqrt_().round_().long()
    size = torch.minimum(size.clamp_min(1), limit)
    room = limit - size
    return torch.minimum((u[:, _TOP_LEFT] * (room + 1)).long(), room), size


def _crop_windows(u: torch.Tensor, v: torch.Tensor, recipe: ViewRecipe, in_h, in_w):
    """RandomResizedCrop.get_params, vectorized: the first of 10 tries that fits, else a center crop (or, with
    crop_sampler "deepmind", _clamped_windows). Height and width are handled as one B x 2 pair. Returns (top,
    left) and (height, width), long B x 2."""
    if recipe.crop_sampler == "deepmind":
        return _clamped_windows(u, v, in_h, in_w)
    fh, fw = _fallback_size(recipe, in_h, in_w)
    if isinstance(in_h, int):
        limit, area = ops.const((in_h, in_w), u.device, torch.long), in_h * in_w
        fallback = ops.const((fh, fw), u.device, torch.long)
    else:
        limit, area, fallback = torch.stack((in_h, in_w), 1), (in_h * in_w).unsqueeze(1), torch.stack((fh, fw), 1)
    scaled, ratio = area * v[:, _FRAC], v[:, _LOG_RATIO].exp()
    hw = torch.stack((scaled / ratio, scaled * ratio), 1).sqrt_().round_().long()  # B x 2 x tries
    fits = ((hw > 0) & (hw <= limit.unsqueeze(-1))).all(1)
    first = fits.byte().argmax(1)  # the first try that fits (0 if none: then the fallback is taken)
    size = hw.gather(2, first.view(-1, 1, 1).expand(-1, 2, 1)).squeeze(2)
    found = fits.any(1, keepdim=True)
    size = torch.where(found, size, fallback)
    room = limit - size
    start = torch.where(found, torch.minimum((u[:, _TOP_LEFT] * (room + 1)).long(), room), room // 2)
    return start, size


def view_params_from_uniform(u: torch.Tensor, recipe: ViewRecipe, in_h: int | torch.Tensor,
                             in_w: int | torch.Tensor, recipes: tuple[ViewRecipe, ...] | None = None) -> ViewParams:
    """Every per-sample parameter of one view from its uniform draw (a pure function). `in_h`, `in_w`: the
    image size, ints for the batch or B-long tensors (each folder image's own size).

    `recipes`: k views of one pass (group_structure(recipes) is `recipe`) whose draws u holds view after view
    (k * B rows): each row takes the ranges and probabilities of its own view, the same numbers as k calls."""
    dev = u.device
    group = (recipe,) if recipes is None else tuple(recipes)
    if isinstance(in_h, torch.Tensor):  # per image: repeated for each view of the pass
        in_h, in_w = (_per_row(s.to(dev, torch.long), len(u)) for s in (in_h, in_w))
    else:
        in_h, in_w = int(in_h), int(in_w)
    span, low, prob = ops.cached(("uniform_maps", group), dev, lambda d: torch.tensor(
        [_uniform_map(r) for r in group], device=d, dtype=torch.float32).transpose(0, 1).unsqueeze(2))
    per_view = u.view(len(group), -1, UNIFORM_COLUMNS)  # k x B x 36; each view's k x 1 x 36 maps broadcast
    v = (per_view * span + low).view_as(u)
    flags = (per_view < prob).view_as(u)
    start, size = _crop_windows(u, v, recipe, in_h, in_w)
    if recipe.jitter_random_order:
        order = torch.argsort(u[:, _ORDER], dim=1)
    else:  # torchvision's fixed order
        order = ops.const((0, 1, 2, 3), dev, torch.long).expand(len(u), 4)
    return ViewParams(top=start[:, 0], left=start[:, 1], height=size[:, 0], width=size[:, 1], flip=flags[:, _FLIP],
                      jitter=flags[:, _JITTER], factors=v[:, _FACTORS], order=order, grayscale=flags[:, _GRAY],
                      blur=flags[:, _BLUR], sigma=v[:, _SIGMA], solarize=flags[:, _SOLARIZE])


def _per_row(sizes: torch.Tensor, rows: int) -> torch.Tensor:
    sizes = sizes.reshape(-1)
    return sizes.expand(rows) if sizes.numel() == 1 else sizes.repeat(rows // sizes.numel())


# Fields whose per-row value one pass can hold (the uniform map's ranges and the flags' probabilities): views
# that differ only in these run as one batch.
_PER_ROW = ("crop_scale", "blur_sigma", "flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p")
_PROBS = ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p")


def same_pass(a: ViewRecipe, b: ViewRecipe) -> bool:
    """Whether views of recipes a and b (of one output size) can be built in one pass."""
    blank = {f: getattr(ViewRecipe, f) for f in _PER_ROW + tuple(SIZE_DEFAULTS)}
    return replace(a, **blank) == replace(b, **blank)


def group_structure(recipes: tuple[ViewRecipe, ...]) -> ViewRecipe:
    """The recipe one pass of `recipes` runs (all same_pass): the first, with each probability the largest of
    the group, so an op runs when any view may apply it; a row of a view that never applies it draws False,
    and every op is the exact identity on such rows (ops.*: impulse blur, idle blend, where)."""
    return replace(recipes[0], **{p: max(getattr(r, p) for r in recipes) for p in _PROBS})


def sample_view_params(recipe: ViewRecipe, batch_size: int, in_h: int | torch.Tensor, in_w: int | torch.Tensor,
                       generator: torch.Generator, device: torch.device | str) -> ViewParams:
    """Draw every per-sample parameter of one view (one generator call). `in_h`, `in_w`: ints, or per-image sizes."""
    return view_params_from_uniform(draw_uniforms(batch_size, generator, device), recipe, in_h, in_w)
