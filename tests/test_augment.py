"""Batched augmentation vs a per-image reference built from torchvision.transforms.v2.functional."""
from __future__ import annotations

import colorsys
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from sklearn.datasets import load_digits
from torchvision.transforms import InterpolationMode

from ssl_bench.data import augment_ops as ops
from ssl_bench.data.augment import (SUPERVISED_VIEW, UNIFORM_COLUMNS, MultiViewAugment, ViewRecipe,
                                    adapt_channels, apply_view, blur_kernel_size, eval_transform,
                                    sample_view_params, view_params_from_uniform)
from ssl_bench.data.types import FolderBatch
from ssl_bench.errors import UserError
from ssl_bench.methods.byol import BYOL

# The recipe BYOL trains with (methods/byol.py), not a second copy kept for the tests.
BYOL_VIEWS = tuple(ViewRecipe.from_dict(v, "byol") for v in BYOL.view_recipes(BYOL.defaults))

MODES = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}
CROP_ONLY = dict(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These batches are tiny: a second intra-op thread only adds contention on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """24 real 1-channel images, 8x8 upscaled to a non-square 40x32 uint8 batch."""
    x = torch.tensor(load_digits().images[:24], dtype=torch.float32).unsqueeze(1) / 16
    x = F.interpolate(x, size=(40, 32), mode="bilinear", align_corners=False)
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def rgb() -> torch.Tensor:
    """24 random RGB images; a stripe of gray pixels (r = g = b) exercises hue's flat case."""
    x = torch.randint(0, 256, (24, 3, 36, 44), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    x[:, :, 5] = x[:, :1, 5]
    return x


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def reference(images: torch.Tensor, p, recipe: ViewRecipe, size: int, mean, std) -> torch.Tensor:
    """The same view, one image at a time, with torchvision's functional ops and the sampled parameters."""
    out = []
    for i in range(len(images)):
        x = images[i].float() / 255
        x = TF.resized_crop(x, int(p.top[i]), int(p.left[i]), int(p.height[i]), int(p.width[i]), [size, size],
                            interpolation=MODES[recipe.interpolation], antialias=False)
        if p.flip[i]:
            x = TF.horizontal_flip(x)
        if p.jitter[i]:
            fb, fc, fs, fh = p.factors[i].tolist()
            for op in p.order[i].tolist():
                if op == 0 and recipe.brightness > 0:  # BYOL's additive brightness by its formula
                    x = (x + fb).clamp(0, 1) if recipe.brightness_mode == "additive" else TF.adjust_brightness(x, fb)
                elif op == 1 and recipe.contrast > 0:
                    x = TF.adjust_contrast(x, fc)
                elif op == 2 and recipe.saturation > 0:
                    x = TF.adjust_saturation(x, fs)
                elif op == 3 and recipe.hue > 0:
                    x = TF.adjust_hue(x, fh)
        if p.grayscale[i] and x.shape[0] == 3:
            x = TF.rgb_to_grayscale(x, num_output_channels=3)
        if p.blur[i]:
            k = blur_kernel_size(recipe, size)
            x = TF.gaussian_blur(x, [k, k], [float(p.sigma[i])] * 2)
        if p.solarize[i]:
            x = TF.solarize(x, recipe.solarize_threshold)
        out.append(TF.normalize(x.clamp(0, 1), list(mean), list(std)))
    return torch.stack(out)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [20, 56])  # down- and upsampling
def test_resized_crop_flip_matches_torchvision(digits, mode, size):
    p = sample_view_params(ViewRecipe(**CROP_ONLY), len(digits), 40, 32, gen(), "cpu")
    x = digits.float() / 255
    ours = ops.resized_crop_flip(x, p.top, p.left, p.height, p.width, p.flip, size, mode)  # no clip here
    for i in range(len(x)):
        ref = TF.resized_crop(x[i], int(p.top[i]), int(p.left[i]), int(p.height[i]), int(p.width[i]),
                              [size, size], interpolation=MODES[mode], antialias=False)
        ref = TF.horizontal_flip(ref) if p.flip[i] else ref
        torch.testing.assert_close(ours[i], ref, atol=1e-5, rtol=0)


def test_resize_weights_stay_in_window_and_sum_to_one():
    p = sample_view_params(ViewRecipe(crop_scale=(0.01, 0.2)), 256, 40, 32, gen(), "cpu")
    for mode in MODES:
        wy = ops.resize_weights(p.top, p.height, 40, 16, mode, p.flip)
        torch.testing.assert_close(wy.sum(2), torch.ones(256, 16), atol=1e-6, rtol=0)
        col = torch.arange(40)
        outside = (col < p.top.view(-1, 1, 1)) | (col >= (p.top + p.height).view(-1, 1, 1))
        assert (wy[outside.expand_as(wy)] == 0).all()


def _cases():
    return {
        "crop_bilinear_digits": ("digits", ViewRecipe(interpolation="bilinear", **CROP_ONLY), 24),
        "crop_bicubic_rgb": ("rgb", ViewRecipe(interpolation="bicubic", **CROP_ONLY), 48),
        "jitter_additive_random_order": ("rgb", ViewRecipe(jitter_p=1.0, grayscale_p=0, blur_p=0), 32),
        "jitter_multiplicative_fixed_order": ("rgb", ViewRecipe(
            jitter_p=1.0, brightness_mode="multiplicative", jitter_random_order=False, brightness=0.8,
            contrast=0.8, saturation=0.8, hue=0.3, grayscale_p=0, blur_p=0), 32),
        "gray_blur_solarize": ("rgb", ViewRecipe(jitter_p=0, grayscale_p=0.5, blur_p=0.7, solarize_p=0.5), 40),
        "byol_view1_rgb": ("rgb", BYOL_VIEWS[0], 40),
        "byol_view2_rgb": ("rgb", BYOL_VIEWS[1], 40),
        "byol_view1_digits": ("digits", ViewRecipe(jitter_p=1.0), 48),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_apply_view_matches_per_image_reference(case, request):
    name, recipe, size = _cases()[case]
    images = request.getfixturevalue(name)
    c = images.shape[1]
    mean, std = (0.4,) * c, (0.2,) * c
    p = sample_view_params(recipe, len(images), *images.shape[-2:], gen(3), "cpu")
    ours = apply_view(images, p, recipe, size, mean, std)
    ref = reference(images, p, recipe, size, mean, std)
    assert ours.shape == (len(images), c, size, size) and ours.dtype == torch.float32
    # float32 rounding only (observed <= 3e-6 in [0,1] units, hue included), scaled by 1/std
    torch.testing.assert_close(ours, ref, atol=2e-5 / 0.2, rtol=0)


def test_crop_sampling_ranges():
    recipe = ViewRecipe(crop_scale=(0.2, 0.9), crop_ratio=(0.5, 2.0))
    p = sample_view_params(recipe, 20000, 224, 224, gen(), "cpu")
    h, w = p.height.double(), p.width.double()
    area = h * w / (224 * 224)
    ratio = w / h
    # w and h are rounded to whole pixels: allow that much slack around the declared ranges
    assert area.min() >= 0.2 * 0.98 and area.max() <= 0.9 * 1.02
    assert area.min() < 0.21 and area.max() > 0.85
    assert ratio.min() >= 0.5 * 0.97 and ratio.max() <= 2.0 * 1.03
    assert ratio.min() < 0.52 and ratio.max() > 1.9
    assert (p.top >= 0).all() and (p.left >= 0).all()
    assert (p.top + p.height <= 224).all() and (p.left + p.width <= 224).all()
    assert p.top.min() == 0 and p.left.min() == 0  # windows reach every border
    assert (p.top + p.height).max() == 224 and (p.left + p.width).max() == 224
    # log-uniform ratio: as many crops wider than tall as taller than wide
    assert abs((ratio > 1).double().mean() - 0.5) < 0.03


def test_crop_fallback_is_torchvision_center_crop():
    # a 100 x 224 strip (ratio 2.24) never fits scale >= 0.9 with ratio <= 4/3: every sample falls back
    p = sample_view_params(ViewRecipe(crop_scale=(0.9, 1.0)), 64, 100, 224, gen(), "cpu")
    assert (p.height == 100).all() and (p.width == round(100 * 4 / 3)).all()
    assert (p.top == 0).all() and (p.left == (224 - 133) // 2).all()


def test_flag_frequencies_match_probabilities():
    recipe = ViewRecipe(flip_p=0.5, jitter_p=0.8, grayscale_p=0.2, blur_p=0.1, solarize_p=0.2)
    n = 40000
    p = sample_view_params(recipe, n, 32, 32, gen(), "cpu")
    for flags, prob in [(p.flip, 0.5), (p.jitter, 0.8), (p.grayscale, 0.2), (p.blur, 0.1), (p.solarize, 0.2)]:
        freq = flags.double().mean().item()
        assert abs(freq - prob) < 4 * (prob * (1 - prob) / n) ** 0.5
    assert 0.1 <= p.sigma.min() and p.sigma.max() <= 2.0
    assert p.factors[:, 0].abs().max() <= 0.4 and p.factors[:, 0].min() < -0.39  # additive brightness in [-b, b]
    assert p.factors[:, 3].abs().max() <= 0.1
    orders = {tuple(o) for o in p.order[:2000].tolist()}
    assert len(orders) == 24  # all permutations of the four jitter ops occur


def test_deterministic_given_seed_and_resumable(rgb):
    aug = MultiViewAugment(BYOL_VIEWS, 40, (0.5,) * 3, (0.25,) * 3)
    a, b = aug(rgb, gen(7)), aug(rgb, gen(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], aug(rgb, gen(8))[0])
    g = gen(7)
    aug(rgb, g)
    state = g.get_state()
    second = aug(rgb, g)
    g2 = torch.Generator()
    g2.set_state(state)
    assert all(torch.equal(x, y) for x, y in zip(second, aug(rgb, g2)))


def test_blur_off_at_32px_unless_asked(digits):
    blur_only = ViewRecipe(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0, **{**CROP_ONLY, "blur_p": 1.0})
    x = digits[:, :, 4:36]  # 32 x 32: the whole-image crop is an exact identity resize
    plain = (x.float() / 255 - 0.5) / 0.25
    off = MultiViewAugment([blur_only], 32, (0.5,), (0.25,))(x, gen())[0]
    on = MultiViewAugment([blur_only], 32, (0.5,), (0.25,), blur_small_images=True)(x, gen())[0]
    torch.testing.assert_close(off, plain, atol=1e-6, rtol=0)
    assert (on - plain).abs().max() > 0.1
    assert MultiViewAugment(BYOL_VIEWS, 64, (0.5,), (0.25,)).recipes[0].blur_p == 1.0


def test_output_is_normalized_float(rgb):
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    views = MultiViewAugment(BYOL_VIEWS, 40, mean, std)(rgb, gen())
    for v in views:
        assert v.shape == (24, 3, 40, 40) and v.dtype == torch.float32
        raw = v * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
        assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5


def test_eval_transform_matches_torchvision(digits, rgb):
    for images, size in [(digits, 24), (digits, 64), (rgb, 30), (rgb[:, :, :, :36], 20), (rgb[:, :, :, :36], 36)]:
        c = images.shape[1]
        ours = eval_transform(images, size, (0.3,) * c, (0.2,) * c)
        x = TF.center_crop(TF.resize(images.float() / 255, size, antialias=True), [size, size])
        torch.testing.assert_close(ours, TF.normalize(x, [0.3] * c, [0.2] * c), atol=1e-4, rtol=0)


def test_adapt_channels():
    x = torch.rand(2, 3, 5, 5)
    gray = adapt_channels(x, 1)
    torch.testing.assert_close(gray[:, 0], 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    assert torch.equal(adapt_channels(gray, 3), gray.expand(2, 3, 5, 5))
    assert adapt_channels(x, 3) is x


def test_recipes_follow_byol_table6():
    v1, v2 = BYOL_VIEWS
    assert (v1.blur_p, v1.solarize_p, v2.blur_p, v2.solarize_p) == (1.0, 0.0, 0.1, 0.2)
    assert v1.crop_scale == (0.08, 1.0) and v1.interpolation == "bicubic" and v1.jitter_p == 0.8
    assert blur_kernel_size(v1, 224) == 23
    assert (SUPERVISED_VIEW.jitter_p, SUPERVISED_VIEW.grayscale_p, SUPERVISED_VIEW.blur_p) == (0, 0, 0)
    assert ViewRecipe.from_dict(v2.to_dict(), "view") == v2


@pytest.mark.parametrize("d, expected", [
    ({"blur_prob": 0.5}, ["view.blur_prob", "did you mean 'blur_p'", "allowed keys: crop_scale"]),
    ({"blur_p": 1.5}, ["view.blur_p", "1.5", "[0.0, 1.0]"]),
    ({"crop_scale": [0.9, 0.2]}, ["view.crop_scale", "[0.9, 0.2]", "lo <= hi"]),
    ({"crop_ratio": [0, 1]}, ["view.crop_ratio", "0.0 < lo"]),
    ({"interpolation": "nearest"}, ["view.interpolation", "'nearest'", "bilinear, bicubic"]),
    ({"brightness_mode": "add"}, ["view.brightness_mode", "additive, multiplicative"]),
    ({"hue": 0.7}, ["view.hue", "0.7", "[0.0, 0.5]"]),
    ({"jitter_random_order": "yes"}, ["view.jitter_random_order", "true or false"]),
])
def test_from_dict_errors_name_field_value_and_allowed(d, expected):
    with pytest.raises(UserError) as err:
        ViewRecipe.from_dict(d, "view")
    msg = str(err.value)
    assert "\n" not in msg
    for part in expected:
        assert part in msg


# --- The fused, few-op pieces against straightforward per-image code written here (issue #18) ---

def _uni(x: float, lo: float, hi: float) -> float:
    return lo + (hi - lo) * x


def params_by_hand(u: list[float], recipe: ViewRecipe, in_h: int, in_w: int) -> dict:
    """One sample's parameters from its 36 uniforms, in Python floats: torchvision's RandomResizedCrop.get_params
    (10 tries, then the ratio-clipped center crop), then flip, jitter, factors, order, gray, blur, sigma, solarize."""
    r0, r1 = recipe.crop_ratio
    for i in range(10):
        target = in_h * in_w * _uni(u[i], *recipe.crop_scale)
        aspect = math.exp(_uni(u[10 + i], math.log(r0), math.log(r1)))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= in_w and 0 < h <= in_h:
            top, left = min(int(u[20] * (in_h - h + 1)), in_h - h), min(int(u[21] * (in_w - w + 1)), in_w - w)
            break
    else:
        h, w = in_h, in_w
        if in_w / in_h < r0:
            h = round(in_w / r0)
        elif in_w / in_h > r1:
            w = round(in_h * r1)
        top, left = (in_h - h) // 2, (in_w - w) // 2
    b = recipe.brightness
    bright = _uni(u[24], -b, b) if recipe.brightness_mode == "additive" else _uni(u[24], max(0, 1 - b), 1 + b)
    return {"window": (top, left, h, w), "flip": u[22] < recipe.flip_p, "jitter": u[23] < recipe.jitter_p,
            "factors": (bright, _uni(u[25], max(0, 1 - recipe.contrast), 1 + recipe.contrast),
                        _uni(u[26], max(0, 1 - recipe.saturation), 1 + recipe.saturation),
                        _uni(u[27], -recipe.hue, recipe.hue)),
            "order": sorted(range(4), key=lambda k: u[28 + k]) if recipe.jitter_random_order else [0, 1, 2, 3],
            "gray": u[32] < recipe.grayscale_p, "blur": u[33] < recipe.blur_p,
            "sigma": _uni(u[34], *recipe.blur_sigma), "solarize": u[35] < recipe.solarize_p}


@pytest.mark.parametrize("recipe, sizes", [
    (BYOL_VIEWS[1], (40, 32)),
    (ViewRecipe(crop_scale=(0.9, 1.0), brightness_mode="multiplicative", jitter_random_order=False), (30, 90)),
    (ViewRecipe(crop_scale=(0.2, 0.9), crop_ratio=(0.5, 2.0), solarize_p=0.3), "per image"),
])
def test_params_from_uniform_match_a_per_sample_reference(recipe, sizes):
    n = 400
    u = torch.rand(n, UNIFORM_COLUMNS, generator=gen(5))
    if sizes == "per image":  # folder images: each its own size, some strips that force the fallback
        hs, ws = torch.randint(8, 60, (n,), generator=gen(6)), torch.randint(8, 60, (n,), generator=gen(7))
        ws[::7] = hs[::7] * 4
    else:
        hs, ws = torch.full((n,), sizes[0]), torch.full((n,), sizes[1])
    p = view_params_from_uniform(u, recipe, *((hs, ws) if sizes == "per image" else sizes))
    ours = torch.stack([p.top, p.left, p.height, p.width], 1)
    off = 0
    for i in range(n):
        ref = params_by_hand(u[i].tolist(), recipe, int(hs[i]), int(ws[i]))
        # float32 here, float64 there: a size that rounds the other way is 1 px off, and rare
        diff = (ours[i] - torch.tensor(ref["window"])).abs().max().item()
        assert diff <= 1, (i, ours[i], ref["window"])
        off += diff > 0
        assert (p.flip[i], p.jitter[i], p.grayscale[i], p.blur[i], p.solarize[i]) == (
            ref["flip"], ref["jitter"], ref["gray"], ref["blur"], ref["solarize"])
        assert p.order[i].tolist() == ref["order"]
        torch.testing.assert_close(p.factors[i], torch.tensor(ref["factors"]), atol=1e-6, rtol=0)
        assert abs(p.sigma[i].item() - ref["sigma"]) < 1e-6
    assert off <= n // 100
    assert ((p.top + p.height <= hs) & (p.left + p.width <= ws)).all()


def keys_cubic(d: float) -> float:
    d, a = abs(d), -0.75
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a if d < 2 else 0.0


def resize_matrix_by_hand(offset: int, length: int, in_size: int, out_size: int, mode: str, flip: bool):
    """F.interpolate(align_corners=False) of the window as a matrix: taps clamped into the window add up."""
    m = torch.zeros(out_size, in_size, dtype=torch.float64)
    for j in range(out_size):
        src = ((out_size - 1 - j if flip else j) + 0.5) * length / out_size - 0.5
        if mode == "bilinear":
            src = max(src, 0.0)
            i0 = min(math.floor(src), length - 1)
            lam = min(max(src - i0, 0.0), 1.0)
            m[j, offset + i0] += 1 - lam
            m[j, offset + min(i0 + 1, length - 1)] += lam
        else:
            i0 = math.floor(src)
            for k in (-1, 0, 1, 2):
                m[j, offset + min(max(i0 + k, 0), length - 1)] += keys_cubic(src - (i0 + k))
    return m


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_resize_weights_match_a_per_sample_matrix(mode):
    g = gen(2)
    n, in_size = 60, 23
    length = torch.randint(1, in_size + 1, (n,), generator=g)
    length[:6] = torch.tensor([1, 1, 2, 2, 3, in_size])  # windows where most taps clamp onto one pixel
    offset = (torch.rand(n, generator=g) * (in_size - length + 1)).long()
    flip = torch.rand(n, generator=g) < 0.5
    for out_size in (5, 16, 40):  # down and up
        ours = ops.resize_weights(offset, length, in_size, out_size, mode, flip)
        for i in range(n):
            ref = resize_matrix_by_hand(int(offset[i]), int(length[i]), in_size, out_size, mode, bool(flip[i]))
            torch.testing.assert_close(ours[i].double(), ref, atol=1e-5, rtol=0)  # float32 positions


def hue_by_hand(x: torch.Tensor, shift: float) -> torch.Tensor:
    """colorsys, pixel by pixel."""
    out = x.clone()
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            h, s, v = colorsys.rgb_to_hsv(*x[:, i, j].tolist())
            out[:, i, j] = torch.tensor(colorsys.hsv_to_rgb((h + shift) % 1.0, s, v), dtype=x.dtype)
    return out


def jitter_by_hand(x: torch.Tensor, order: list[int], factors: list[float], recipe: ViewRecipe) -> torch.Tensor:
    """Brightness, contrast, saturation and hue by their formulas, one after another, on one float64 image."""
    rgb = x.shape[0] == 3

    def gray(y: torch.Tensor) -> torch.Tensor:
        return 0.2989 * y[0] + 0.587 * y[1] + 0.114 * y[2] if rgb else y[0]

    for op in order:
        f = factors[op]
        if op == 0 and recipe.brightness > 0:
            x = (x + f if recipe.brightness_mode == "additive" else x * f).clamp(0, 1)
        elif op == 1 and recipe.contrast > 0:
            x = (f * x + (1 - f) * gray(x).mean()).clamp(0, 1)
        elif op == 2 and recipe.saturation > 0 and rgb:
            x = (f * x + (1 - f) * gray(x)).clamp(0, 1)
        elif op == 3 and recipe.hue > 0 and rgb:
            x = hue_by_hand(x, f)
    return x


@pytest.fixture(scope="module")
def digits_rgb(digits) -> torch.Tensor:
    """Real pictures in color: three different digits as r, g, b (16 x 16), with flat black background."""
    d = digits[:, :, 4:36, :].float()
    d = F.interpolate(d, size=(16, 16), mode="area").round().to(torch.uint8)
    return torch.cat([d[:-2], d[1:-1], d[2:]], 1)


WHOLE_IMAGE = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, grayscale_p=0.0, blur_p=0.0)


@pytest.mark.parametrize("images, recipe", [
    ("digits_rgb", ViewRecipe(jitter_p=0.8, **WHOLE_IMAGE)),  # BYOL's jitter, random order, additive brightness
    ("rgb_square", ViewRecipe(jitter_p=1.0, brightness_mode="multiplicative", brightness=0.8, contrast=0.8,
                              saturation=0.8, hue=0.4, **WHOLE_IMAGE)),
    ("rgb_square", ViewRecipe(jitter_p=1.0, jitter_random_order=False, brightness=0.0, hue=0.2, **WHOLE_IMAGE)),
    ("rgb_square", ViewRecipe(jitter_p=1.0, hue=0.0, **WHOLE_IMAGE)),
    ("digits_square", ViewRecipe(jitter_p=1.0, **WHOLE_IMAGE)),  # 1 channel: no saturation, no hue
])
def test_fused_jitter_matches_per_image_formulas(images, recipe, request, rgb):
    if images == "rgb_square":
        x = rgb[:12, :, :16, :16]
    elif images == "digits_square":
        x = request.getfixturevalue("digits")[:, :, 4:36, :]
    else:
        x = request.getfixturevalue(images)
    c, size = x.shape[1], x.shape[-1]
    p = sample_view_params(recipe, len(x), size, size, gen(8), "cpu")
    assert (p.height == size).all() and (p.top == 0).all()  # the whole image: the crop is an exact copy
    ours = apply_view(x, p, recipe, size, (0.0,) * c, (1.0,) * c)
    for i in range(len(x)):
        ref = x[i].double() / 255
        if p.jitter[i]:
            ref = jitter_by_hand(ref, p.order[i].tolist(), p.factors[i].double().tolist(), recipe)
        torch.testing.assert_close(ours[i].double(), ref.clamp(0, 1), atol=1e-5, rtol=0)


def test_multiview_is_one_uniform_draw_per_view_then_a_pure_function(rgb):
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    aug = MultiViewAugment(BYOL_VIEWS, 24, mean, std)
    g, by_hand = gen(11), gen(11)
    views = aug(rgb, g)
    for view, recipe in zip(views, aug.recipes):
        u = torch.rand(len(rgb), 36, generator=by_hand)  # the draw layout: 36 uniforms per image, view by view
        p = view_params_from_uniform(u, recipe, *rgb.shape[-2:])
        torch.testing.assert_close(view, reference(rgb, p, recipe, 24, mean, std), atol=2e-5 / 0.2, rtol=0)
    assert torch.equal(g.get_state(), by_hand.get_state())


def test_compile_wraps_each_views_pure_part_without_graph_breaks(rgb, monkeypatch):
    """compile=True hands each view's pure function to torch.compile(dynamic=False). Here the compiler is
    dynamo with the eager backend and fullgraph (a real inductor build takes minutes on this CPU): the whole
    view must trace as one graph, and give the eager numbers."""
    calls, real_compile = [], torch.compile

    def eager_compile(fn, **kwargs):
        calls.append(kwargs)
        return real_compile(fn, backend="eager", fullgraph=True, **kwargs)

    monkeypatch.setattr(torch, "compile", eager_compile)
    recipes = BYOL_VIEWS[1:]  # blur, solarize and all of the jitter
    compiled = MultiViewAugment(recipes, 16, (0.5,) * 3, (0.25,) * 3, blur_small_images=True, compile=True)
    assert calls == [{"dynamic": False}]
    plain = MultiViewAugment(recipes, 16, (0.5,) * 3, (0.25,) * 3, blur_small_images=True)
    x = rgb[:6]
    for a, b in zip(compiled(x, gen(4)), plain(x, gen(4))):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    folder = FolderBatch(x, torch.tensor([[36, 44], [20, 44], [36, 9], [30, 30], [1, 44], [36, 44]]))
    for a, b in zip(compiled(folder, gen(4)), plain(folder, gen(4))):  # canvases: eager
        assert torch.equal(a, b)
