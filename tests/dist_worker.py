"""One short pretraining per method, on one process or as one rank of a gloo group (tests/test_distributed.py).

`python tests/dist_worker.py OUT` is started twice with torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT); the test runs `train_case` itself on one process for the reference. Views are a fixed function
of each image (no random augmentation), so both sides see the same global batch of views.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ssl_bench import distributed as dist
from ssl_bench.data.types import ImageSet
from ssl_bench.engine.trainer import TrainSettings, pretrain
from ssl_bench.methods.byol import BYOL
from ssl_bench.methods.dino import DINO
from ssl_bench.methods.moco_v2 import MoCoV2
from ssl_bench.methods.moco_v3 import MoCoV3
from ssl_bench.methods.nnclr import NNCLR
from ssl_bench.methods.simclr import SimCLR
from ssl_bench.engine.sync_batchnorm import convert_sync_batchnorm
from ssl_bench.methods.swav import SwAV

GLOBAL_BATCH, STEPS = 16, 2
HEADS = {"proj_hidden_dim": 16, "proj_dim": 8}
CASES = {
    "byol": (BYOL, {**HEADS, "pred_hidden_dim": 16, "tau_base": 0.9}),
    "simclr": (SimCLR, {**HEADS, "temperature": 0.5}),
    "moco_v2": (MoCoV2, {**HEADS, "queue_size": 4 * GLOBAL_BATCH, "tau": 0.9}),
    "moco_v3": (MoCoV3, {**HEADS, "pred_hidden_dim": 16, "tau_base": 0.9}),
    "nnclr": (NNCLR, {**HEADS, "pred_hidden_dim": 16, "queue_size": 4 * GLOBAL_BATCH}),
    # the queue (8 rows per rank, 16 on one process) fills in step 0 and joins the Sinkhorn in step 1; the
    # prototypes are frozen in step 0 only
    "swav": (SwAV, {"hidden_mlp": 16, "feat_dim": 8, "nmb_prototypes": 6, "local_crops": 2, "local_size_frac": 0.5,
                    "queue_length": GLOBAL_BATCH, "epoch_queue_starts": 0, "freeze_prototypes_niters": 1}),
    "dino": (DINO, {"out_dim": 16, "hidden_dim": 16, "bottleneck_dim": 8, "local_crops": 2, "local_size_frac": 0.5,
                    "freeze_last_layer": 0, "warmup_teacher_temp_epochs": 0, "momentum_teacher": 0.9}),
}
MULTI_CROP = ("swav", "dino")  # 2 global views of 8 x 8 and 2 local views of 4 x 4
# SGD, not LARS: LARS rescales each layer's update by |w| / |g|, which would hide a gradient off by a factor.
OPTIM = {"optimizer": "sgd", "base_lr": 3.2, "weight_decay": 1e-4, "momentum": 0.9, "warmup_epochs": 0,
         "exclude_bias_and_norm": True, "lars_eta": 1e-3, "betas": [0.9, 0.999]}


class TinyConvNet(nn.Module):
    """Two conv + BatchNorm layers: batch statistics matter; 8 channels keep CPU channels_last on (see trainer)."""

    num_features = 8

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def digits() -> ImageSet:
    """The first GLOBAL_BATCH * STEPS sklearn digits as uint8 1 x 8 x 8 images."""
    from sklearn.datasets import load_digits

    d = load_digits()
    n = GLOBAL_BATCH * STEPS
    images = torch.from_numpy((d.images[:n] * 255 / 16).astype(np.uint8)).unsqueeze(1)
    return ImageSet(labels=torch.from_numpy(d.target[:n]).long(), images=images)


def fixed_views(images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
    """Two deterministic views per image: the image and its transposed, inverted copy (float64)."""
    x = images.double() / 255
    return [x - 0.5, 0.5 - x.transpose(2, 3)]


def fixed_multi_crop(images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
    """fixed_views, then each of them 2 x 2 average-pooled: 2 global + 2 local crops of two sizes."""
    views = fixed_views(images, generator)
    return views + [nn.functional.avg_pool2d(v, 2) for v in views]


def train_case(name: str, run_dir: Path) -> nn.Module:
    """Build `name` with seed 0, convert to SyncBN when distributed, pretrain one epoch of STEPS steps."""
    cls, params = CASES[name]
    torch.manual_seed(0)
    model = cls(TinyConvNet(), **params).double()
    if dist.world_size() > 1:
        model = convert_sync_batchnorm(model, torch.device("cpu"))
    settings = TrainSettings(epochs=1, batch_size=GLOBAL_BATCH, optim=OPTIM, device=torch.device("cpu"),
                             channels_last=True, seed=0, log_every=1, progress=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    pretrain(model, digits(), fixed_multi_crop if name in MULTI_CROP else fixed_views, settings, run_dir)
    return model


def main(out: str) -> None:
    from ssl_bench.engine.process_group import init_distributed

    torch.set_num_threads(1)
    init_distributed()
    for name in CASES:
        model = train_case(name, Path(out) / name)
        torch.save(model.state_dict(), Path(out) / f"{name}_rank{dist.rank()}.pt")
    if dist.is_main():
        (Path(out) / "done.json").write_text(json.dumps({"world_size": dist.world_size()}))


if __name__ == "__main__":
    main(sys.argv[1])
