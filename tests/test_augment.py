"""Batched augmentation vs a per-image reference built from torchvision.transforms.v2.functional."""
from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from ssl_bench.data import augment_ops as ops
from ssl_bench.data.augment import (SUPERVISED_VIEW, MultiViewAugment, ViewRecipe, adapt_channels, apply_view,
                                    blur_kernel_size, eval_transform, sample_view_params)
from ssl_bench.errors import UserError

from augment_reference import BYOL_VIEWS, CROP_ONLY, MODES, digits, gen, one_thread, reference, rgb  # noqa: F401 - fixtures


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
