"""Augmentation recipes of the methods, as plain dicts of ssl_bench.data.augment.ViewRecipe fields."""

# [BYOL Table 6]: view 1 / view 2 differ only in blur (1.0 / 0.1) and solarize (0.0 / 0.2).
BYOL_VIEW_1 = {"crop_scale": [0.08, 1.0], "interpolation": "bicubic", "flip_p": 0.5, "jitter_p": 0.8,
               "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1, "brightness_mode": "additive",
               "grayscale_p": 0.2, "blur_p": 1.0, "solarize_p": 0.0}
BYOL_VIEW_2 = {**BYOL_VIEW_1, "blur_p": 0.1, "solarize_p": 0.2}

# Supervised baseline and fine-tuning: crop + flip only.
CROP_FLIP = {"crop_scale": [0.08, 1.0], "interpolation": "bilinear", "flip_p": 0.5, "jitter_p": 0.0,
             "grayscale_p": 0.0, "blur_p": 0.0, "solarize_p": 0.0}


def simclr_view(strength: float = 1.0) -> dict:
    """SimCLR's view for color strength s [SCp App. A, SC data_util.py]: crop 0.08-1 (bicubic), flip,
    jitter (0.8s, 0.8s, 0.8s, 0.2s) in random order with p 0.8, grayscale 0.2, blur p 0.5, no solarize.
    Brightness is multiplicative as in the official code's default (simclrv2) implementation."""
    s = float(strength)
    return {"crop_scale": [0.08, 1.0], "interpolation": "bicubic", "flip_p": 0.5, "jitter_p": 0.8,
            "brightness": 0.8 * s, "contrast": 0.8 * s, "saturation": 0.8 * s, "hue": 0.2 * s,
            "brightness_mode": "multiplicative", "jitter_random_order": True, "grayscale_p": 0.2,
            "blur_p": 0.5, "blur_sigma": [0.1, 2.0], "solarize_p": 0.0}


SIMCLR_VIEW = simclr_view(1.0)  # s = 1 for ImageNet [SCp]; CIFAR runs use s = 0.5 and no blur

# MoCo v2 [MoCo main_moco.py --aug-plus]: torchvision ops, so multiplicative jitter in random order, bilinear
# crops of scale 0.2-1, blur sigma U[0.1, 2] with p 0.5; both views share the recipe.
MOCO_V2_VIEW = {"crop_scale": [0.2, 1.0], "interpolation": "bilinear", "flip_p": 0.5, "jitter_p": 0.8,
                "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1,
                "brightness_mode": "multiplicative", "jitter_random_order": True, "grayscale_p": 0.2,
                "blur_p": 0.5, "blur_sigma": [0.1, 2.0], "solarize_p": 0.0}

# MoCo v3 [M3 Sec. 4, main_moco.py]: BYOL's asymmetric recipe (blur 1.0 / 0.1, solarize 0.0 / 0.2, jitter
# (0.4, 0.4, 0.2, 0.1) p 0.8) built from torchvision ops: multiplicative jitter, bilinear crops. Crop scale
# 0.2-1: every ResNet-50 reference run in [M3 CONFIG.md] passes --crop-min=.2 (the code default 0.08 is ViT's).
MOCO_V3_VIEW_1 = {"crop_scale": [0.2, 1.0], "interpolation": "bilinear", "flip_p": 0.5, "jitter_p": 0.8,
                  "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1,
                  "brightness_mode": "multiplicative", "jitter_random_order": True, "grayscale_p": 0.2,
                  "blur_p": 1.0, "blur_sigma": [0.1, 2.0], "solarize_p": 0.0}
MOCO_V3_VIEW_2 = {**MOCO_V3_VIEW_1, "blur_p": 0.1, "solarize_p": 0.2}

# Barlow Twins [BT main.py L290-321] and VICReg [VR augmentations.py L37-85] share one recipe: BYOL's asymmetric
# views (blur 1.0 / 0.1, solarize 0.0 / 0.2) built from torchvision ops, so multiplicative jitter (0.4, 0.4, 0.2,
# 0.1) in random order with p 0.8, bicubic crops of scale 0.08-1 (RandomResizedCrop's default), blur sigma
# U[0.1, 2] (PIL's radius, here a kernel of 10% of the image).
BARLOW_TWINS_VIEW_1 = {"crop_scale": [0.08, 1.0], "interpolation": "bicubic", "flip_p": 0.5, "jitter_p": 0.8,
                       "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1,
                       "brightness_mode": "multiplicative", "jitter_random_order": True, "grayscale_p": 0.2,
                       "blur_p": 1.0, "blur_sigma": [0.1, 2.0], "solarize_p": 0.0}
BARLOW_TWINS_VIEW_2 = {**BARLOW_TWINS_VIEW_1, "blur_p": 0.1, "solarize_p": 0.2}
VICREG_VIEW_1, VICREG_VIEW_2 = BARLOW_TWINS_VIEW_1, BARLOW_TWINS_VIEW_2

# SimSiam [SS main_simsiam.py L229-239]: MoCo v2's recipe for both views (MOCO_V2_VIEW above).
SIMSIAM_VIEW = MOCO_V2_VIEW

# SwAV [swav src/multicropdataset.py]: every crop (global or local) gets the same colour transform: torchvision
# RandomResizedCrop (bilinear) and flip 0.5, ColorJitter(0.8s, 0.8s, 0.8s, 0.2s) with p 0.8 (s = 1), grayscale
# 0.2, PIL gaussian blur p 0.5 with radius U[0.1, 2], no solarize; only crop scale and size differ
# [scripts/swav_800ep_pretrain.sh: 2 x 224 at 0.14-1, 6 x 96 at 0.05-0.14].
SWAV_VIEW = {**simclr_view(1.0), "interpolation": "bilinear"}

# DINO [dino main_dino.py DataAugmentationDINO]: bicubic crops, flip, ColorJitter(0.4, 0.4, 0.2, 0.1) p 0.8,
# grayscale 0.2 (torchvision: multiplicative, random order); global view 1 blur 1.0, global view 2 blur 0.1 and
# solarize 0.2, local views blur 0.5 (utils.GaussianBlur radius U[0.1, 2]); crop scales are method parameters.
DINO_GLOBAL_1 = {"interpolation": "bicubic", "flip_p": 0.5, "jitter_p": 0.8, "brightness": 0.4, "contrast": 0.4,
                 "saturation": 0.2, "hue": 0.1, "brightness_mode": "multiplicative", "jitter_random_order": True,
                 "grayscale_p": 0.2, "blur_p": 1.0, "blur_sigma": [0.1, 2.0], "solarize_p": 0.0}
DINO_GLOBAL_2 = {**DINO_GLOBAL_1, "blur_p": 0.1, "solarize_p": 0.2}
DINO_LOCAL = {**DINO_GLOBAL_1, "blur_p": 0.5}
LOCAL_96_OF_224 = 96 / 224  # DINO's and SwAV's local crops: 96 px of a 224 px image, as a fraction


def multi_crop(global_views: list[dict], local_view: dict, n_local: int, global_scale, local_scale,
               local_size_frac: float) -> list[dict]:
    """Multi-crop's views in order: the global views (at the image size, crop scale `global_scale`), then
    n_local copies of `local_view` at `local_size_frac` of the image size, crop scale `local_scale`."""
    globals_ = [{**v, "crop_scale": list(global_scale)} for v in global_views]
    local = {**local_view, "crop_scale": list(local_scale), "size_frac": float(local_size_frac)}
    return globals_ + [dict(local) for _ in range(n_local)]
