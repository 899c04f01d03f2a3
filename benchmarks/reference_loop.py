"""The reference BYOL loop, written the way peer code commonly does it (our own code, for comparison only).

Per-image PIL/torchvision transforms for the two views inside a DataLoader with workers (for a folder set,
each JPEG decoded with PIL in the workers, as torchvision's ImageFolder does), fp32, contiguous
memory, separate forward passes for each view in both branches (the model's concat_target_views=False path),
EMA by a Python loop over parameters, and a loss.item() every step for logging. It shares the model, the
optimizer recipe and the lr schedule with ssl-bench's engine, so only the levers under test differ.
"""
from __future__ import annotations

from typing import Callable

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from ssl_bench.data.augment import ViewRecipe, blur_kernel_size
from ssl_bench.data.types import ImageSet
from ssl_bench.engine.optim import build_optimizer
from ssl_bench.engine.schedules import scaled_lr, warmup_cosine


def peer_view(recipe: dict, size: int, mean, std) -> T.Compose:
    """One BYOL view as a torchvision PIL pipeline. Blur is left out at <= 32 px, as in ssl-bench's
    MultiViewAugment for small images (CIFAR recipes drop it); above, a kernel of about 10% of the view
    (23 at 224 px [BYOL Table 6])."""
    interp = T.InterpolationMode.BICUBIC if recipe["interpolation"] == "bicubic" else T.InterpolationMode.BILINEAR
    ops = [T.RandomResizedCrop(size, scale=tuple(recipe["crop_scale"]), interpolation=interp),
           T.RandomHorizontalFlip(recipe["flip_p"]),
           T.RandomApply([T.ColorJitter(recipe["brightness"], recipe["contrast"], recipe["saturation"],
                                        recipe["hue"])], p=recipe["jitter_p"]),
           T.RandomGrayscale(recipe["grayscale_p"])]
    if size > 32 and recipe["blur_p"] > 0:
        k = blur_kernel_size(ViewRecipe.from_dict(recipe, "views"), size)
        ops.append(T.RandomApply([T.GaussianBlur(k, sigma=tuple(recipe["blur_sigma"]))], p=recipe["blur_p"]))
    if recipe["solarize_p"] > 0:
        ops.append(T.RandomSolarize(128, p=recipe["solarize_p"]))
    ops += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(ops)


class TwoViewDataset(Dataset):
    """uint8 N x C x H x W images served as PIL images through two per-image transforms."""

    def __init__(self, data: ImageSet, view1: Callable, view2: Callable):
        self.images, self.labels = data.images, data.labels
        self.view1, self.view2 = view1, view2

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = self.images[i]
        img = Image.fromarray(x[0].numpy(), mode="L") if x.shape[0] == 1 else Image.fromarray(x.permute(1, 2, 0).numpy())
        return self.view1(img), self.view2(img), self.labels[i]


class FolderTwoViewDataset(Dataset):
    """Image files decoded with PIL in the DataLoader workers (torchvision ImageFolder's loader), two views."""

    def __init__(self, paths: list[str], labels: torch.Tensor, view1: Callable, view2: Callable):
        self.paths, self.labels = paths, labels
        self.view1, self.view2 = view1, view2

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        with open(self.paths[i], "rb") as f:
            img = Image.open(f).convert("RGB")
        return self.view1(img), self.view2(img), self.labels[i]


def two_view_dataset(data: ImageSet, views: tuple[dict, dict], size: int, mean, std) -> Dataset:
    """The peer-style two-view dataset of `data`: in-memory uint8 images or image files."""
    v1, v2 = peer_view(views[0], size, mean, std), peer_view(views[1], size, mean, std)
    if data.in_memory:
        return TwoViewDataset(data, v1, v2)
    return FolderTwoViewDataset(list(data.paths), data.labels, v1, v2)


def python_loop_ema(pairs, tau: float) -> None:
    """target <- tau * target + (1 - tau) * online, one parameter at a time."""
    with torch.no_grad():
        for online, target in pairs:
            for po, pt in zip(online.parameters(), target.parameters()):
                pt.data.mul_(tau).add_(po.data, alpha=1 - tau)


def reference_train(model, data: ImageSet, views: tuple[dict, dict], *, size: int, mean, std, batch_size: int,
                    epochs: int, optim: dict, device: torch.device, num_workers: int, seed: int,
                    on_step: Callable[[int], None] | None = None) -> list[float]:
    """Train `model` (a BYOL Method) in place; returns the per-step losses. `on_step(step)` is called
    after each step (the benchmark's clock)."""
    model.to(device)
    ds = two_view_dataset(data, views, size, mean, std)
    pin = device.type == "cuda"
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=num_workers,
                        pin_memory=pin, persistent_workers=num_workers > 0,
                        generator=torch.Generator().manual_seed(seed))
    steps_per_epoch = len(loader)
    total, peak = epochs * steps_per_epoch, scaled_lr(optim["base_lr"], batch_size)
    warmup = round(optim["warmup_epochs"] * steps_per_epoch)
    opt = build_optimizer(model, optim, peak)
    pairs, losses, step = model.momentum_pairs(), [], 0
    torch.manual_seed(seed)  # the workers' transform seeds derive from it
    for _ in range(epochs):
        model.train()
        for v1, v2, _labels in loader:
            v1, v2 = v1.to(device, non_blocking=pin), v2.to(device, non_blocking=pin)
            for group in opt.param_groups:
                group["lr"] = warmup_cosine(step, total, warmup, peak)
            loss = model([v1, v2])["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            python_loop_ema(pairs, model.momentum_at(step, total))
            losses.append(loss.item())  # per-step logging, as peers do
            step += 1
            if on_step is not None:
                on_step(step)
    return losses
