"""The fused, few-op pieces of the augmentation (issue #18) against straightforward per-image code written here."""
from __future__ import annotations

import colorsys
import math

import pytest
import torch
import torch.nn.functional as F

from ssl_bench.data import augment_ops as ops
from ssl_bench.data.augment import (UNIFORM_COLUMNS, MultiViewAugment, ViewRecipe, apply_view, sample_view_params,
                                    view_params_from_uniform)
from ssl_bench.data.types import FolderBatch

from augment_reference import BYOL_VIEWS, digits, gen, one_thread, reference, rgb  # noqa: F401 - fixtures


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
