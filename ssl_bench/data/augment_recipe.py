"""ViewRecipe: the parameters of one augmented view, with validation of user-given values (their per-sample draw
for a batch, ViewParams, is in data/view_params.py).

Defaults are BYOL's view 1 [BYOL Table 6]; view 2 differs in blur (0.1) and solarize (0.2) probabilities.

Output size (multi-crop): a view is `size_frac` of the run's image size (1.0: the image size; DINO's and SwAV's
96 px local crops of 224 px images are 3/7), rounded to whole pixels, or `size_px` pixels when that is given
(> 0). The fraction keeps one recipe meaningful from 224 px ImageNet to a 16 px CPU suite; the absolute size is
for recipes tied to a pixel grid (a ViT's patches). Either way the resolved side must be at least MIN_VIEW_PX.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable


from ssl_bench import validate as v

INTERPOLATIONS = ("bilinear", "bicubic")
MIN_VIEW_PX = 4  # the smallest view side (and dataset image_size) a suite may ask for
BRIGHTNESS_MODES = ("additive", "multiplicative")
# torchvision's RandomResizedCrop: up to 10 (area, ratio) draws, the first that fits, else a centre crop.
# deepmind: one draw, width and height clamped to the image [DM utils/dataset.py _decode_and_random_crop,
# lines 206-233]; larger crops on average (mean area 0.52 vs 0.43 of a 375 x 500 image at scale 0.08-1).
CROP_SAMPLERS = ("torchvision", "deepmind")


@dataclass(frozen=True)
class ViewRecipe:
    crop_scale: tuple[float, float] = (0.08, 1.0)  # area fraction, U[scale]
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio w/h, log-uniform
    crop_sampler: str = "torchvision"  # CROP_SAMPLERS; BYOL's ImageNet suites use "deepmind"
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
        and the crop sampler are left out at their defaults, so run ids of suites from before multi-crop and
        before the DeepMind sampler stay as they were."""
        out = {k: list(x) if isinstance(x, tuple) else x for k, x in asdict(self).items()}
        for key, default in SIZE_DEFAULTS.items():
            if out[key] == default:
                del out[key]
        if out["crop_sampler"] == "torchvision":
            del out["crop_sampler"]
        return out

    def out_size(self, image_size: int) -> int:
        """The view's side in pixels for a run at `image_size` px (size_px, else round(size_frac * image_size))."""
        return self.size_px if self.size_px > 0 else max(1, round(self.size_frac * image_size))


SIZE_DEFAULTS = {"size_frac": 1.0, "size_px": 0}


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
    "crop_sampler": _choice(CROP_SAMPLERS),
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
