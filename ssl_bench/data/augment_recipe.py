"""ViewRecipe: the parameters of one augmented view, with validation of user-given values; ViewParams: their
per-sample draw for a batch (one uniform draw per view, then a pure function of it).

Defaults are BYOL's view 1 [BYOL Table 6]; view 2 differs in blur (0.1) and solarize (0.2) probabilities.

Output size (multi-crop): a view is `size_frac` of the run's image size (1.0: the image size; DINO's and SwAV's
96 px local crops of 224 px images are 3/7), rounded to whole pixels, or `size_px` pixels when that is given
(> 0). The fraction keeps one recipe meaningful from 224 px ImageNet to a 16 px CPU suite; the absolute size is
for recipes tied to a pixel grid (a ViT's patches). Either way the resolved side must be at least MIN_VIEW_PX.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable

import torch

from .. import validate as v
from . import augment_ops as ops

INTERPOLATIONS = ("bilinear", "bicubic")
MIN_VIEW_PX = 4  # the smallest view side (and dataset image_size) a suite may ask for
BRIGHTNESS_MODES = ("additive", "multiplicative")


@dataclass(frozen=True)
class ViewRecipe:
    crop_scale: tuple[float, float] = (0.08, 1.0)  # area fraction, U[scale]
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio w/h, log-uniform
    interpolation: str = "bicubic"
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    # BYOL's official code adds a delta in [-b, b]; torchvision ColorJitter / SimCLR v2 multiply by [1-b, 1+b].
    brightness_mode: str = "additive"
    jitter_random_order: bool = True
    grayscale_p: float = 0.2
    blur_p: float = 1.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_frac: float = 0.1  # kernel 23 at 224 px [BYOL Table 6]
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5
    size_frac: float = 1.0  # output side / the run's image size, rounded (multi-crop's local crops: < 1)
    size_px: int = 0  # output side in pixels; 0: from size_frac

    def __post_init__(self) -> None:
        for f in fields(self):  # normalize (lists -> tuples, ints -> floats) and validate direct construction
            object.__setattr__(self, f.name, _check(f.name, getattr(self, f.name), f"ViewRecipe.{f.name}"))

    @classmethod
    def from_dict(cls, d: Any, field: str) -> "ViewRecipe":
        """Recipe from a YAML mapping; errors name `field.key`, the bad value and what is allowed."""
        d = v.as_dict(d, field)
        v.check_keys(d, [f.name for f in fields(cls)], field)
        return cls(**{key: _check(key, value, f"{field}.{key}") for key, value in d.items()})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-friendly dict (tuples as lists); from_dict(to_dict()) round-trips. The size fields
        are left out at their defaults (a view of the image size), so run ids of suites from before multi-crop
        stay as they were."""
        out = {k: list(x) if isinstance(x, tuple) else x for k, x in asdict(self).items()}
        for key, default in _SIZE_DEFAULTS.items():
            if out[key] == default:
                del out[key]
        return out

    def out_size(self, image_size: int) -> int:
        """The view's side in pixels for a run at `image_size` px (size_px, else round(size_frac * image_size))."""
        return self.size_px if self.size_px > 0 else max(1, round(self.size_frac * image_size))


_SIZE_DEFAULTS = {"size_frac": 1.0, "size_px": 0}


def check_view_sizes(views: list[dict[str, Any]], image_size: int, field: str) -> None:
    """Each view's resolved side against MIN_VIEW_PX at a run's image size; the error names `field.viewK`."""
    for i, d in enumerate(views):
        recipe = ViewRecipe.from_dict(d, f"{field}.view{i + 1}")
        side = recipe.out_size(image_size)
        if side < MIN_VIEW_PX:
            lowest = math.ceil((MIN_VIEW_PX - 0.5) / image_size * 1000) / 1000
            raise v.fail(f"{field}.view{i + 1}.size_frac", recipe.size_frac,
                         f"a fraction giving at least {MIN_VIEW_PX} px at image_size {image_size} (this one gives "
                         f"{side} px; >= {lowest:g}), or size_px >= {MIN_VIEW_PX}")


def _prob(value: Any, field: str) -> float:
    return v.as_float(value, field, 0.0, 1.0)


def _nonneg(value: Any, field: str) -> float:
    return v.as_float(value, field, 0.0)


def _range(lo_min: float, hi_max: float | None) -> Callable[[Any, str], tuple[float, float]]:
    """Check an ordered pair [lo, hi] with lo_min < lo <= hi (<= hi_max)."""
    top = f" <= {hi_max}" if hi_max is not None else ""
    allowed = f"a list [lo, hi] of numbers with {lo_min} < lo <= hi{top}"

    def check(value: Any, field: str) -> tuple[float, float]:
        ok = (isinstance(value, (list, tuple)) and len(value) == 2
              and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x == x for x in value))
        if ok:
            lo, hi = float(value[0]), float(value[1])
            ok = lo_min < lo <= hi and (hi_max is None or hi <= hi_max)
        if not ok:
            raise v.fail(field, list(value) if isinstance(value, tuple) else value, allowed)
        return lo, hi

    return check


def _choice(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    return lambda value, field: v.as_str(value, field, choices)


_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "crop_scale": _range(0.0, 1.0),
    "crop_ratio": _range(0.0, None),
    "interpolation": _choice(INTERPOLATIONS),
    "flip_p": _prob,
    "jitter_p": _prob,
    "brightness": _nonneg,
    "contrast": _nonneg,
    "saturation": _nonneg,
    "hue": lambda value, field: v.as_float(value, field, 0.0, 0.5),
    "brightness_mode": _choice(BRIGHTNESS_MODES),
    "jitter_random_order": v.as_bool,
    "grayscale_p": _prob,
    "blur_p": _prob,
    "blur_sigma": _range(0.0, None),
    "blur_kernel_frac": lambda value, field: v.as_float(value, field, 0.0, 1.0),
    "solarize_p": _prob,
    "solarize_threshold": _prob,
    "size_frac": lambda value, field: _size_frac(value, field),
    "size_px": lambda value, field: _size_px(value, field),
}


def _size_frac(value: Any, field: str) -> float:
    x = v.as_float(value, field, 0.0, 1.0)
    if x <= 0:
        raise v.fail(field, value, "a number in (0, 1]: the view's side as a fraction of the image size")
    return x


def _size_px(value: Any, field: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    n = v.as_int(value, field, 0, 4096)
    if 0 < n < MIN_VIEW_PX:
        raise v.fail(field, value, f"0 (use size_frac) or an integer in [{MIN_VIEW_PX}, 4096] pixels")
    return n


def _check(key: str, value: Any, field: str) -> Any:
    return _CHECKS[key](value, field)


def blur_kernel_size(recipe: ViewRecipe, out_size: int) -> int:
    """Odd kernel of about blur_kernel_frac * out_size (23 at 224 px), at least 3, reflect-paddable."""
    k = int(round(recipe.blur_kernel_frac * out_size))
    k = max(3, k + 1 if k % 2 == 0 else k)
    return min(k, 2 * (out_size - 1) + 1) if out_size > 1 else 1


# Supervised baseline and fine-tuning: random resized crop + flip only.
SUPERVISED_VIEW = ViewRecipe(crop_scale=(0.08, 1.0), jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0)


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


def _crop_windows(u: torch.Tensor, v: torch.Tensor, recipe: ViewRecipe, in_h, in_w):
    """RandomResizedCrop.get_params, vectorized: the first of 10 tries that fits, else a center crop.
    Height and width are handled as one B x 2 pair. Returns (top, left) and (height, width), long B x 2."""
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
    blank = {f: getattr(ViewRecipe, f) for f in _PER_ROW + tuple(_SIZE_DEFAULTS)}
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
