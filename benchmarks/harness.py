"""Shared pieces of the benchmarks: the configs, their data and models, and one timed runner per call.

Every runner returns {"images_per_s", "step_s" (per-step wall times after warm-up), ...}. On CUDA the clock
is read after a synchronize only at the ends of the timed steps, so per-step times there are not meaningful;
images_per_s is (total over the timed steps).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import torch

from ssl_bench.create import create_backbone
from ssl_bench.data.augment import MultiViewAugment, ViewRecipe
from ssl_bench.create import create_dataset
from ssl_bench.data.types import DatasetBundle, ImageSet
from ssl_bench.engine.ema import ema_update
from ssl_bench.engine.optim import build_optimizer
from ssl_bench.engine.schedules import scaled_lr, warmup_cosine
from ssl_bench.engine.prefetch import resolve_prefetch
from ssl_bench.engine.trainer import TrainSettings, pretrain
from ssl_bench.errors import DatasetUnavailableError
from ssl_bench.registry import METHODS, load_plugins

import folder_data
from reference_loop import python_loop_ema, reference_train

SIZE = 32
CHANNELS = [16, 32, 64, 128]  # the narrow resnet18


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark setup: model, view size and data; default batch per mode (cpu, cuda, quick)."""

    name: str
    backbone: str
    channels: tuple[int, ...] | None  # backbone widths; None: the model's own (full width)
    in_chans: int
    size: int  # view side in px
    data: str  # fashion_mnist (digits when missing) | synthetic_cifar | jpeg_folder
    batch: dict[str, int]
    quick_size: int | None = None  # view side of --quick (None: size)
    warmup_cuda: int = 3
    steps_cuda: int = 100


BENCH_CONFIGS = {c.name: c for c in (
    BenchConfig("tiny", "resnet18", tuple(CHANNELS), 1, SIZE, "fashion_mnist", {"cpu": 256, "cuda": 256, "quick": 16}),
    # full-width resnet18 with the small-image stem (create_backbone's small_stem="auto" at 32 px)
    BenchConfig("cifar-r18", "resnet18", None, 3, 32, "synthetic_cifar", {"cpu": 512, "cuda": 512, "quick": 8}),
    # workers decode JPEGs: after 10 warm-up steps the loaders' queues hold up to 16-32 ready batches (8 workers
    # x prefetch 2-4), a minority of 100 timed steps, so a decode-bound loop still shows as such. --quick: 96 px views (same path, a
    # fifth of the model's work; the small-image stem only switches on at <= 64 px)
    BenchConfig("imagenet-r50", "resnet50", None, 3, 224, "jpeg_folder", {"cpu": 32, "cuda": 256, "quick": 4},
                quick_size=96, warmup_cuda=10),
)}
TINY = BENCH_CONFIGS["tiny"]


@dataclass
class BenchData:
    """What the runners need of a dataset: the images to train on and the normalisation."""

    name: str
    train: ImageSet
    mean: tuple[float, ...]
    std: tuple[float, ...]


def load_data() -> DatasetBundle:
    load_plugins()
    try:
        return create_dataset("fashion_mnist", None, False)
    except DatasetUnavailableError:
        return create_dataset("digits", None, False)


def load_config_data(cfg: BenchConfig, n_images: int) -> BenchData:
    """The config's training images, at least `n_images` of them (the JPEG folder is topped up to that)."""
    if cfg.data == "fashion_mnist":
        b = load_data()
        return BenchData(b.name, b.train, b.mean, b.std)
    if cfg.data == "synthetic_cifar":
        images, labels = folder_data.synthetic_cifar()
        return BenchData("synthetic CIFAR-shape uint8 (50000x3x32x32)", ImageSet(labels=labels, images=images),
                         folder_data.CIFAR_MEAN, folder_data.CIFAR_STD)
    root = folder_data.jpeg_folder(n_images)
    load_plugins()
    b = create_dataset("image_folder", None, False, path=str(root))
    return BenchData(f"generated JPEG folder {root}", b.pretrain_images, b.mean, b.std)


def build_byol(seed: int, concat_target_views: bool = False, cfg: BenchConfig = TINY, size: int | None = None):
    load_plugins()
    torch.manual_seed(seed)
    kw = {"channels": list(cfg.channels)} if cfg.channels else {}
    bb = create_backbone(cfg.backbone, in_chans=cfg.in_chans, image_size=size or cfg.size, **kw)
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


def call_times_ms(fn, repeats: int, device: torch.device) -> list[float]:
    """Wall ms of `repeats` calls of fn, each between device synchronizations."""
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(1000 * (time.perf_counter() - t))
    return times


def _summary(stamps: list[float], warmup: int, batch: int) -> dict:
    timed = stamps[warmup:]
    steps = [b - a for a, b in zip(timed, timed[1:])]
    total = timed[-1] - timed[0]
    return {"images_per_s": len(steps) * batch / total, "step_s": steps, "median_step_s": median(steps)}


def run_reference(data: BenchData, device: torch.device, batch: int, warmup: int, steps: int, workers: int,
                  seed: int, cfg: BenchConfig = TINY, size: int | None = None) -> dict:
    size = size or cfg.size
    model = build_byol(seed, cfg=cfg, size=size)
    train = first_n(data.train, (warmup + steps) * batch)
    stamps: list[float] = []

    def on_step(step: int) -> None:
        sync(device)
        stamps.append(time.perf_counter())

    reference_train(model, train, byol_views(), size=size, mean=data.mean, std=data.std, batch_size=batch,
                    epochs=1, optim=METHODS.get("byol").optim_recipe(), device=device, num_workers=workers,
                    seed=seed, on_step=on_step)
    return _summary(stamps, warmup - 1, batch)  # stamps[k] ends step k+1


def prefetch_setting(choice: str, device: torch.device) -> bool:
    """TrainSettings.prefetch for --prefetch auto|on|off; auto is the suite's `pretrain.prefetch: auto` for this
    device (engine.prefetch.resolve_prefetch), so the benchmark measures what a user gets."""
    return {"on": True, "off": False}[choice] if choice != "auto" else resolve_prefetch("auto", device)


def run_engine(data: BenchData, device: torch.device, batch: int, warmup: int, steps: int, seed: int,
               amp_dtype, channels_last: bool, concat: bool, compile: bool, data_on_device: bool,
               cfg: BenchConfig = TINY, size: int | None = None, workers: int = 0, prefetch: str = "auto") -> dict:
    """ssl-bench's pretrain() as a user gets it, clocked by pretrain's on_step (training thread, after each
    optimizer step: with prefetch the augmentation runs on another thread, so its call is no clock)."""
    size = size or cfg.size
    model = build_byol(seed, concat, cfg=cfg, size=size)
    train = first_n(data.train, (warmup + steps) * batch)
    if data_on_device and device.type != "cpu" and train.in_memory:
        train = ImageSet(labels=train.labels.to(device), images=train.images.to(device))
    views = [ViewRecipe.from_dict(v, "views") for v in byol_views()]
    augment = MultiViewAugment(views, size, data.mean, data.std)
    stamps: list[float] = []
    total = warmup + steps

    def on_step(step: int) -> None:
        if step in (warmup, total):  # CUDA: synchronize only where the timed span starts and ends
            sync(device)
        stamps.append(time.perf_counter())

    fetch = prefetch_setting(prefetch, device)
    s = TrainSettings(epochs=1, batch_size=batch, optim=METHODS.get("byol").optim_recipe(), device=device,
                      amp_dtype=amp_dtype, channels_last=channels_last, seed=seed, progress=False, compile=compile,
                      num_workers=0 if train.in_memory else workers, prefetch=fetch)
    with tempfile.TemporaryDirectory() as tmp:
        pretrain(model, train, augment, s, Path(tmp), on_step=on_step)
    return _summary(stamps, warmup - 1, batch) | {"clock": "on_step", "prefetch": fetch}


class ModelStep:
    """The model-only step (random views, no data path) with each lever switchable."""

    def __init__(self, device: torch.device, batch: int, seed: int, *, amp_dtype=None, channels_last=False,
                 concat=False, foreach_ema=True, compile=False, total_steps: int = 1000, cfg: BenchConfig = TINY,
                 size: int | None = None):
        self.device, self.amp_dtype, self.foreach_ema = device, amp_dtype, foreach_ema
        size = size or cfg.size
        self.model = build_byol(seed, concat, cfg=cfg, size=size).to(device)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=fmt)
        self.net = torch.compile(self.model) if compile else self.model
        recipe = METHODS.get("byol").optim_recipe()
        self.peak = scaled_lr(recipe["base_lr"], batch)
        self.opt = build_optimizer(self.model, recipe, self.peak)
        gen = torch.Generator().manual_seed(seed)
        self.views = [torch.randn(batch, cfg.in_chans, size, size, generator=gen).to(device)
                      .contiguous(memory_format=fmt) for _ in range(2)]
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
