"""Tiny NNCLR, SwAV and DINO models and their view augmentations on 8 px digits, shared by the multi-crop engine
tests and the method tests. Every schedule is short enough to switch inside a 3-epoch run of 4 steps per epoch:
DINO's teacher temperature warms up over 2 epochs and its last layer is frozen in epoch 0; SwAV's queue starts
in epoch 1 and fills after 2 steps, its prototypes are frozen for the first 3 steps."""
from __future__ import annotations

import torch

from ssl_bench.create import create_backbone
from ssl_bench.data.augment import MultiViewAugment, ViewRecipe
from ssl_bench.create import create_dataset
from ssl_bench.data.types import ImageSet
from ssl_bench.method import Method
from ssl_bench.registry import METHODS

BATCH, IMAGES = 32, 128  # 4 steps per epoch
TINY = {
    "dino": {"out_dim": 32, "hidden_dim": 16, "bottleneck_dim": 8, "local_crops": 2, "local_size_frac": 0.5,
             "warmup_teacher_temp_epochs": 2, "freeze_last_layer": 1},
    "swav": {"hidden_mlp": 16, "feat_dim": 8, "nmb_prototypes": 12, "local_crops": 2, "local_size_frac": 0.5,
             "queue_length": 64, "epoch_queue_starts": 1, "freeze_prototypes_niters": 3},
    "nnclr": {"proj_hidden_dim": 16, "proj_dim": 8, "pred_hidden_dim": 16, "queue_size": 64},
}


def digits(n: int = IMAGES) -> ImageSet:
    return create_dataset("digits").train.subset(torch.arange(n))


def tiny(name: str, **params) -> Method:
    torch.manual_seed(0)
    backbone = create_backbone("resnet18", in_chans=1, image_size=8, channels=[8, 8, 8, 8], stem_width=8)
    return METHODS.get(name)(backbone, num_classes=10, **{**TINY[name], **params})


def augment(name: str, size: int = 8, **params) -> MultiViewAugment:
    cls, bundle = METHODS.get(name), create_dataset("digits")
    views = cls.view_recipes({**cls.defaults, **TINY[name], **params})
    return MultiViewAugment([ViewRecipe.from_dict(v, name) for v in views], size, bundle.mean, bundle.std)
