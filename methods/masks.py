"""Patch-mask samplers of the masked-image methods, as pure functions of a torch.Generator, batched.

MAE   [MAE models_mae.py L123-148]: per-image random masking by the argsort of uniform noise; the first
      int(N (1 - ratio)) patches of each image's shuffle are kept (the same count for every image).
I-JEPA [IJ src/masks/multiblock.py]: one block size per batch for the M target blocks and one for the context
      block (`block_size`, L55-72: a single uniform draws both the scale and the aspect ratio, h and w are
      clipped below the grid size); per image, M target rectangles at uniform corners (L89-90: the corner is
      drawn from [0, H - h), so a block never covers the last row or column, as in the official code) and one
      context rectangle minus every target patch, redrawn until more than `min_keep` patches remain; after 20
      failures the constraint of the last remaining target is dropped (L77-104, `allow_overlap: false`).
      Context index lists are cut to the smallest count in the batch, keeping the first indices in raster
      order (L164-168), so every image has as many context (and target) patches as the others.

Indices are raster order (row * W + col) of the backbone's patch grid. `MaskClock` gives each training step its
own generator from buffers saved with the model: masks are reproducible from the run seed and resume with it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ssl_bench.distributed import rank

TRIES_PER_LEVEL = 20  # [IJ multiblock.py L85]: redraws before one target's constraint is dropped


def mae_random_masking(batch: int, num_patches: int, mask_ratio: float,
                       generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep, masked): keep (B, n_keep) long patch indices in shuffle order, n_keep = int(N (1 - ratio));
    masked (B, N) bool, True where the patch is removed (the loss is taken there). On the generator's device."""
    n_keep = int(num_patches * (1 - mask_ratio))
    if not 0 < n_keep < num_patches:
        raise ValueError(f"mask_ratio {mask_ratio} keeps {n_keep} of {num_patches} patches; need 1 to N - 1")
    noise = torch.rand(batch, num_patches, generator=generator, device=generator.device)
    keep = noise.argsort(dim=1)[:, :n_keep]  # small noise is kept
    masked = torch.ones(batch, num_patches, dtype=torch.bool, device=noise.device)
    masked.scatter_(1, keep, False)
    return keep, masked


@dataclass(frozen=True)
class MultiBlock:
    """I-JEPA's multi-block mask recipe on a patch grid [IJ configs/in1k_vith14_ep300.yaml `mask:`]."""

    grid: tuple[int, int]  # (H, W) patches
    context_scale: tuple[float, float] = (0.85, 1.0)
    target_scale: tuple[float, float] = (0.15, 0.2)
    target_aspect: tuple[float, float] = (0.75, 1.5)  # h / w
    num_targets: int = 4
    min_keep: int = 10  # a context needs more than this many patches


def block_size(u: float, grid: tuple[int, int], scale: tuple[float, float],
               aspect: tuple[float, float]) -> tuple[int, int]:
    """(h, w) of a block for one uniform draw u [IJ multiblock.py L55-72]."""
    height, width = grid
    area = int(height * width * (scale[0] + u * (scale[1] - scale[0])))
    ratio = aspect[0] + u * (aspect[1] - aspect[0])
    h, w = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
    return min(h, height - 1), min(w, width - 1)


def _rectangles(tops: torch.Tensor, lefts: torch.Tensor, h: int, w: int, grid: tuple[int, int]) -> torch.Tensor:
    """Boolean (..., H * W) masks of h x w rectangles with the given top-left corners."""
    rows = torch.arange(grid[0]).view(1, -1, 1)
    cols = torch.arange(grid[1]).view(1, 1, -1)
    t, lft = tops.reshape(-1, 1, 1), lefts.reshape(-1, 1, 1)
    inside = (rows >= t) & (rows < t + h) & (cols >= lft) & (cols < lft + w)
    return inside.reshape(*tops.shape, grid[0] * grid[1])


def _corners(shape: tuple[int, ...], h: int, w: int, grid: tuple[int, int],
             g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randint(0, grid[0] - h, shape, generator=g), torch.randint(0, grid[1] - w, shape, generator=g)


def _context_masks(targets: torch.Tensor, size: tuple[int, int], spec: MultiBlock,
                   g: torch.Generator) -> torch.Tensor:
    """(B, N) context masks: a rectangle minus the targets it must avoid, with more than min_keep patches."""
    batch, num_targets = targets.shape[:2]
    chosen = torch.zeros(batch, targets.shape[2], dtype=torch.bool)
    todo = torch.ones(batch, dtype=torch.bool)
    for level in range(num_targets + 1):  # level k: the last k targets no longer constrain the context
        tops, lefts = _corners((batch, TRIES_PER_LEVEL), *size, spec.grid, g)
        avoid = targets[:, :num_targets - level].any(dim=1, keepdim=True)  # (B, 1, N)
        candidates = _rectangles(tops, lefts, *size, spec.grid) & ~avoid
        valid = candidates.sum(dim=2) > spec.min_keep  # (B, tries)
        first = valid.int().argmax(dim=1)  # the first valid try, as the official loop takes it
        take = todo & valid.any(dim=1)
        chosen[take] = candidates[take, first[take]]
        todo &= ~take
        if not todo.any():
            return chosen
    raise ValueError(f"no context block of {size[0]}x{size[1]} patches has more than min_keep={spec.min_keep} "
                     "patches; lower min_keep or raise context_scale")


def first_k(masks: torch.Tensor, k: int) -> torch.Tensor:
    """(B, k) indices of the first k True entries of each row of a (B, N) mask, in raster order."""
    take = masks & (masks.cumsum(dim=1) <= k)
    return take.nonzero()[:, 1].view(masks.shape[0], k)


def multiblock_masks(batch: int, spec: MultiBlock, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(context, targets): context (B, n_ctx) and targets (B, M, h * w) long patch indices, raster order.

    Drawn on the CPU from `generator` (a CPU generator): the block sizes first (target, then context, one
    uniform each), then the target corners, then the context tries."""
    u_target, u_context = torch.rand(2, generator=generator).tolist()
    t_size = block_size(u_target, spec.grid, spec.target_scale, spec.target_aspect)
    c_size = block_size(u_context, spec.grid, spec.context_scale, (1.0, 1.0))
    tops, lefts = _corners((batch, spec.num_targets), *t_size, spec.grid, generator)
    target_masks = _rectangles(tops, lefts, *t_size, spec.grid)  # (B, M, N)
    context = _context_masks(target_masks, c_size, spec, generator)
    k = int(context.sum(dim=1).min())
    n_t = t_size[0] * t_size[1]
    targets = target_masks.reshape(-1, target_masks.shape[2]).nonzero()[:, 1].view(batch, spec.num_targets, n_t)
    return first_k(context, k), targets


class MaskClock(nn.Module):
    """A fresh generator for each training step, from a seed drawn at construction (from the run seed's global
    RNG) and a step count, both saved with the model. Each process gets its own stream (the rank is mixed in)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("seed", torch.randint(0, 2**40, (), dtype=torch.long))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def generator(self, device: torch.device | str = "cpu") -> torch.Generator:
        """The next step's generator on `device` (advances the step count)."""
        step = int(self.step)
        with torch.no_grad():
            self.step.add_(1)
        mixed = (int(self.seed) * 1_000_003 + step) * 4099 + rank()
        return torch.Generator(device=device).manual_seed(mixed % (2**63))
