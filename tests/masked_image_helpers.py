"""Shared by test_mae.py and test_ijepa.py: a tiny ViT and a few engine steps of a method on real digits."""
from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_VIT = {"patch_size": 2, "depth": 2, "embed_dim": 64, "num_heads": 2}  # 16 px digits -> an 8x8 patch grid


def tiny_vit(in_chans: int = 1, image_size: int = 16, **kwargs) -> torch.nn.Module:
    from ssl_bench.create import create_backbone

    return create_backbone("vit_tiny_patch16_224", in_chans=in_chans, image_size=image_size,
                           **{**TINY_VIT, **kwargs})


def digits_set(n: int = 256):
    from sklearn.datasets import load_digits

    from ssl_bench.data.types import ImageSet

    d = load_digits()
    images = torch.from_numpy(d.images[:n] * 255 / 16).round().to(torch.uint8).unsqueeze(1)
    return ImageSet(labels=torch.from_numpy(d.target[:n]).long(), images=images)


def train_with_engine(name: str, run_dir: Path, params: dict, base_lr: float, epochs: int = 5, resume: bool = False,
                      on_epoch_end=None):
    """`epochs` epochs (4 steps of 64 each) of method `name` through the engine's pretrain, with the method's own
    views and optimizer (at `base_lr`, no warmup); returns (method, epoch losses)."""
    from ssl_bench.create import create_method
    from ssl_bench.data.augment import MultiViewAugment, ViewRecipe
    from ssl_bench.engine.trainer import TrainSettings, pretrain

    torch.manual_seed(0)
    method = create_method(name, tiny_vit(), **params)
    views = [ViewRecipe.from_dict(v, "test") for v in method.view_recipes(method.hparams)]
    augment = MultiViewAugment(views, 16, [0.3], [0.4])
    optim = {**method.optim_recipe(), "base_lr": base_lr, "warmup_epochs": 0}
    settings = TrainSettings(epochs=epochs, batch_size=64, optim=optim, device=torch.device("cpu"),
                             channels_last=False, progress=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    pretrain(method, digits_set(), augment, settings, run_dir, resume=resume, on_epoch_end=on_epoch_end)
    losses = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return method, losses


class Interrupted(Exception):
    """Raised by interrupt_after to stop a pretrain() call between epochs."""


def interrupt_after(epochs_done: int):
    """An on_epoch_end callback that stops training once `epochs_done` epochs are checkpointed (it raises at the
    end of the next epoch, before that epoch's checkpoint)."""
    def on_epoch_end(epoch: int) -> dict:
        if epoch == epochs_done:
            raise Interrupted(epoch)
        return {}

    return on_epoch_end
