"""What the augmentation tests share: BYOL's view recipes, real and random test images (fixtures) and a per-image
reference view built from torchvision.transforms.v2.functional."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from sklearn.datasets import load_digits
from torchvision.transforms import InterpolationMode

from ssl_bench.data.augment import ViewRecipe, blur_kernel_size
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
