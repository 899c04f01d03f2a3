"""A short pretraining of one method through the real engine on digits (16 px, narrow ResNet-18), for the
methods' training checks (tests/test_barlow_twins.py, test_vicreg.py, test_simsiam.py): epoch losses from the
metrics log and the trained encoder's features of held-out images."""
from __future__ import annotations

from pathlib import Path

import torch

from ssl_bench.backbones import create_backbone
from ssl_bench.data.augment import MultiViewAugment, ViewRecipe
from ssl_bench.data.types import ImageSet
from ssl_bench.engine.trainer import TrainSettings, pretrain
from conftest import metrics_rows
from test_simclr import EASY_VIEW, digits_uint8


def pretrain_on_digits(cls, run_dir: Path, epochs: int = 4, n_train: int = 512, batch: int = 64,
                       optim: dict | None = None, **params) -> tuple[list[float], torch.Tensor]:
    """(loss of every epoch, encoder features of 256 other digits) after `epochs` epochs of `cls` with its own
    optimizer recipe (overridden by `optim`), mild crop + flip views, seed 0, on one CPU thread."""
    images = digits_uint8()
    torch.manual_seed(0)
    backbone = create_backbone("resnet18", in_chans=1, image_size=16, channels=[8, 16, 16, 16], stem_width=8)
    method = cls(backbone, **params)
    recipe = ViewRecipe.from_dict(EASY_VIEW, "test")
    augment = MultiViewAugment([recipe, recipe], 16, mean=[0.3], std=[0.4])
    data = ImageSet(labels=torch.zeros(n_train, dtype=torch.long), images=images[:n_train], channels=1)
    settings = TrainSettings(epochs=epochs, batch_size=batch, optim={**cls.optim_recipe(), **(optim or {})},
                             device=torch.device("cpu"), channels_last=False, seed=0, log_every=10 ** 6,
                             progress=False)
    pretrain(method, data, augment, settings, run_dir)
    losses = [row["loss"] for row in metrics_rows(run_dir)]
    held_out = images[n_train:n_train + 256].float() / 255
    held_out = torch.nn.functional.interpolate(held_out, size=16, mode="bilinear", align_corners=False)
    method.eval()
    with torch.no_grad():
        features = method.encoder()((held_out - 0.3) / 0.4)
    return losses, features
