"""Shared pieces of the benchmarks: data, model, and one timed configuration per call.

Every runner returns {"images_per_s", "step_s" (per-step wall times after warm-up), ...}. On CUDA the clock
is read only after a synchronize, so per-step times there are not meaningful; images_per_s is (total over
the timed steps).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from statistics import median

import torch

from ssl_bench.create import create_backbone
from ssl_bench.data.augment import MultiViewAugment, ViewRecipe
from ssl_bench.data.datasets import load_dataset
from ssl_bench.data.types import DatasetBundle, ImageSet
from ssl_bench.engine.ema import ema_update
from ssl_bench.engine.optim import build_optimizer
from ssl_bench.engine.schedules import scaled_lr, warmup_cosine
from ssl_bench.engine.trainer import TrainSettings, pretrain
from ssl_bench.errors import DatasetUnavailableError
from ssl_bench.registry import METHODS, load_plugins

from reference_loop import python_loop_ema, reference_train

SIZE = 32
CHANNELS = [16, 32, 64, 128]  # the narrow resnet18


def load_data() -> DatasetBundle:
    load_plugins()
    try:
        return load_dataset("fashion_mnist", None, False)
    except DatasetUnavailableError:
        return load_dataset("digits", None, False)


def build_byol(seed: int, concat_target_views: bool = False):
    load_plugins()
    torch.manual_seed(seed)
    bb = create_backbone("resnet18", in_chans=1, image_size=SIZE, channels=CHANNELS)
    return METHODS.get("byol")(bb, num_classes=10, concat_target_views=concat_target_views)


def byol_views() -> tuple[dict, dict]:
    v = METHODS.get("byol").augmentation["views"]
    return {**ViewRecipe().to_dict(), **v[0]}, {**ViewRecipe().to_dict(), **v[1]}


def first_n(data: ImageSet, n: int) -> ImageSet:
    if n > len(data):
        raise SystemExit(f"--steps/--batch need {n} images; the train split has {len(data)}")
    return data.subset(torch.arange(n))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _summary(stamps: list[float], warmup: int, batch: int) -> dict:
    timed = stamps[warmup:]
    steps = [b - a for a, b in zip(timed, timed[1:])]
    total = timed[-1] - timed[0]
    return {"images_per_s": len(steps) * batch / total, "step_s": steps, "median_step_s": median(steps)}


def run_reference(bundle: DatasetBundle, device: torch.device, batch: int, warmup: int, steps: int,
                  workers: int, seed: int) -> dict:
    model = build_byol(seed)
    data = first_n(bundle.train, (warmup + steps) * batch)
    stamps: list[float] = []

    def on_step(step: int) -> None:
        sync(device)
        stamps.append(time.perf_counter())

    reference_train(model, data, byol_views(), size=SIZE, mean=bundle.mean, std=bundle.std, batch_size=batch,
                    epochs=1, optim=METHODS.get("byol").optim_recipe(), device=device, num_workers=workers,
                    seed=seed, on_step=on_step)
    return _summary(stamps, warmup - 1, batch)  # stamps[k] ends step k+1


def run_engine(bundle: DatasetBundle, device: torch.device, batch: int, warmup: int, steps: int, seed: int,
               amp_dtype, channels_last: bool, concat: bool, compile: bool, data_on_device: bool) -> dict:
    """ssl-bench's pretrain() as a user gets it; the clock reads each step's start (augment call) and the
    epoch end (after the engine's own loss sync)."""
    model = build_byol(seed, concat)
    data = first_n(bundle.train, (warmup + steps) * batch)
    if data_on_device and device.type != "cpu":
        data = ImageSet(labels=data.labels.to(device), images=data.images.to(device))
    views = [ViewRecipe.from_dict(v, "views") for v in byol_views()]
    augment = MultiViewAugment(views, SIZE, bundle.mean, bundle.std)
    stamps: list[float] = []

    def timed_augment(x, gen):
        if len(stamps) == warmup:
            sync(device)
        stamps.append(time.perf_counter())
        return augment(x, gen)

    def on_epoch_end(epoch: int) -> dict:
        sync(device)
        stamps.append(time.perf_counter())
        return {}

    s = TrainSettings(epochs=1, batch_size=batch, optim=METHODS.get("byol").optim_recipe(), device=device,
                      amp_dtype=amp_dtype, channels_last=channels_last, seed=seed, progress=False, compile=compile)
    with tempfile.TemporaryDirectory() as tmp:
        pretrain(model, data, timed_augment, s, Path(tmp), on_epoch_end=on_epoch_end)
    return _summary(stamps, warmup, batch)


class ModelStep:
    """The model-only step (random views, no data path) with each lever switchable."""

    def __init__(self, device: torch.device, batch: int, seed: int, *, amp_dtype=None, channels_last=False,
                 concat=False, foreach_ema=True, compile=False, total_steps: int = 1000):
        self.device, self.amp_dtype, self.foreach_ema = device, amp_dtype, foreach_ema
        self.model = build_byol(seed, concat).to(device)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=fmt)
        self.net = torch.compile(self.model) if compile else self.model
        recipe = METHODS.get("byol").optim_recipe()
        self.peak = scaled_lr(recipe["base_lr"], batch)
        self.opt = build_optimizer(self.model, recipe, self.peak)
        gen = torch.Generator().manual_seed(seed)
        self.views = [torch.randn(batch, 1, SIZE, SIZE, generator=gen).to(device).contiguous(memory_format=fmt)
                      for _ in range(2)]
        self.pairs, self.step, self.total = self.model.momentum_pairs(), 0, total_steps
        self.loss_sum = torch.zeros((), device=device)

    def __call__(self) -> None:
        for group in self.opt.param_groups:
            group["lr"] = warmup_cosine(self.step, self.total, self.total // 10, self.peak)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            loss = self.net(self.views)["loss"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        tau = self.model.momentum_at(self.step, self.total)
        (ema_update if self.foreach_ema else python_loop_ema)(self.pairs, tau)
        self.loss_sum += loss.detach().float()
        self.step += 1

    def timed(self, n: int) -> list[float]:
        """Run n steps; returns the n+1 clock readings (synchronized at both ends)."""
        sync(self.device)
        stamps = [time.perf_counter()]
        for _ in range(n):
            self()
            if self.device.type == "cpu":
                stamps.append(time.perf_counter())
        if self.device.type != "cpu":
            sync(self.device)
            stamps = [stamps[0], time.perf_counter()]
        return stamps


def run_model_only(device: torch.device, batch: int, warmup: int, steps: int, seed: int, **levers) -> dict:
    step = ModelStep(device, batch, seed, **levers)
    step.timed(warmup)
    stamps = step.timed(steps)
    if len(stamps) == 2:  # CUDA: total only
        total = stamps[1] - stamps[0]
        return {"images_per_s": steps * batch / total, "step_s": [total / steps], "median_step_s": total / steps}
    return _summary(stamps, 0, batch)
