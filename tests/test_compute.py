"""Compute in every record: FLOPs per image against the hand count, and the compute fields of a run's rows."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import results_rows
from ssl_bench.cli.main import main
from ssl_bench.data.types import ImageSet
from ssl_bench.engine.compute import compute_record, flops_per_image
from ssl_bench.method import Method


class _TwoViewLinear(Method):
    """loss = sum of a linear map of each flattened view: 2*B*d*k FLOPs forward, twice that backward."""

    def __init__(self, d: int, k: int):
        super().__init__(nn.Linear(d, k, bias=False))

    def training_step(self, views, labels=None):
        return {"loss": sum(self.backbone(v.flatten(1)).sum() for v in views)}


def test_flops_per_image_is_the_hand_count():
    d, k, views = 1 * 4 * 4, 3, 2
    data = ImageSet(labels=torch.zeros(5, dtype=torch.long), images=torch.zeros(5, 1, 4, 4, dtype=torch.uint8),
                    channels=1)
    method = _TwoViewLinear(d, k)
    before = {n: p.clone() for n, p in method.state_dict().items()}

    def augment(images, gen):
        return [images.float() + torch.rand(images.shape, generator=gen) for _ in range(views)]

    got = flops_per_image(method, data, augment, torch.device("cpu"), n_images=2)
    # per image and view: forward x @ W^T (2dk) + backward grad of W (2dk); x needs no grad
    assert got == views * (2 * d * k + 2 * d * k)
    assert all(torch.equal(before[n], p) for n, p in method.state_dict().items())  # the model is untouched
    assert all(p.grad is None for p in method.parameters())


def test_flops_per_image_counts_every_crop_of_a_multicrop_method():
    """2 global crops of 1 x 6 x 6 and 3 local crops of 1 x 3 x 3 through one linear map per size: per source
    image, sum over crops of forward 2 d k + backward 2 d k (d = that crop's pixels)."""
    k = 3

    class MultiCropLinear(Method):
        def __init__(self):
            super().__init__(nn.Linear(36, k, bias=False))
            self.local = nn.Linear(9, k, bias=False)

        def training_step(self, views, labels=None):
            return {"loss": sum((self.backbone if v.shape[-1] == 6 else self.local)(v.flatten(1)).sum()
                                for v in views)}

    data = ImageSet(labels=torch.zeros(4, dtype=torch.long), images=torch.zeros(4, 1, 6, 6, dtype=torch.uint8),
                    channels=1)

    def multicrop(images, gen):
        x = images.float() + torch.rand(images.shape, generator=gen)
        return [x, x] + [x[..., :3, :3]] * 3

    got = flops_per_image(MultiCropLinear(), data, multicrop, torch.device("cpu"), n_images=2)
    assert got == 2 * 4 * 36 * k + 3 * 4 * 9 * k


@pytest.mark.slow
def test_every_row_carries_the_compute_of_its_run(tiny_suite, tmp_path):
    out = tmp_path / "out"
    assert main(["run", tiny_suite(2), "--out", str(out), "--quiet"]) == 0
    rows = results_rows(out)
    byol = next(r for r in rows if r["method"] == "byol")
    steps = 1294 // 64 * 2  # digits train split, batch 64, drop_last, 2 epochs
    assert byol["compute_steps"] == steps and byol["compute_images_seen"] == steps * 64
    assert byol["compute_flops_per_image"] > 0 and byol["compute_wall_s"] > 0 and byol["compute_device_count"] == 1
    assert byol["compute_peak_memory_mb"] > 0
    rand = next(r for r in rows if r["method"] == "random")
    assert rand["compute_images_seen"] == 0 and rand["compute_flops_per_image"] is None
    assert compute_record(None, 64, torch.device("cpu"))["compute_steps"] == 0
