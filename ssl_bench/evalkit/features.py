"""Frozen-encoder feature extraction, once per (dataset, split), shared by every evaluation."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ssl_bench import distributed as dist
from ssl_bench.data.augment import adapt_channels, eval_transform
from ssl_bench.data.loader import iterate_batches
from ssl_bench.data.types import DatasetBundle, ImageSet
from ssl_bench.evaluation import ProgressTask, no_progress


def freeze(encoder: nn.Module) -> nn.Module:
    """Eval mode and no gradients: no parameter or BN-statistics update (lightly #1440)."""
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder


@torch.no_grad()
def extract(encoder: nn.Module, data: ImageSet, *, image_size: int, in_chans: int, mean, std,
            device: torch.device, batch_size: int = 256, num_workers: int = 0,
            on_batch: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (float32, CPU) and labels of every image of `data`, in dataset order.

    Under torchrun each rank extracts its shard and the shards are gathered back in order. `num_workers`
    DataLoader workers read a folder set's images (the same features as 0; in-memory sets need none).
    `on_batch()` runs after each batch (a progress bar).
    """
    if encoder.training:
        raise RuntimeError("extract() needs an encoder in eval mode (call freeze first)")
    ws, rank = dist.world_size(), dist.rank()
    n = len(data)
    idx = torch.arange(rank, n, ws) if ws > 1 else None
    part = data.subset(idx) if idx is not None else data
    feats, labels = [], []
    for images, y in iterate_batches(part, batch_size, shuffle=False, generator=None, drop_last=False,
                                     device=device, num_workers=num_workers):
        x = adapt_channels(eval_transform(images, image_size, mean, std), in_chans)
        feats.append(encoder(x).float().flatten(1))
        labels.append(y)
        if on_batch is not None:
            on_batch()
    f = torch.cat(feats) if feats else torch.zeros(0, 0, device=device)
    y = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long, device=device)
    if ws > 1:  # strided shards -> gather and interleave back to dataset order
        f, y = _gather_strided(f, n), _gather_strided(y, n)
    return f.cpu(), y.cpu()


def _gather_strided(x: torch.Tensor, n: int) -> torch.Tensor:
    ws = dist.world_size()
    per = (n + ws - 1) // ws
    pad = torch.zeros((per - x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
    full = dist.gather_no_grad(torch.cat([x, pad]))  # (ws * per, ...), rank-major
    order = full.view(ws, per, *x.shape[1:]).transpose(0, 1).reshape(ws * per, *x.shape[1:])
    return order[:n]


def feature_cache(encoder: nn.Module, get_dataset: Callable[[str], DatasetBundle],
                  progress: Callable[..., ProgressTask] = no_progress, **kw) -> Callable:
    """A memoized `features(dataset_name, split)` for EvalContext; each extraction shows a progress bar."""
    cache: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def features(name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if (name, split) not in cache:
            data = get_dataset(name).split(split)
            with progress(f"features {name}/{split}", -(-len(data) // kw.get("batch_size", 256)), "batch") as task:
                cache[(name, split)] = extract(encoder, data, on_batch=task.update, **kw)
        return cache[(name, split)]

    features.cache = cache  # type: ignore[attr-defined]
    return features


@torch.no_grad()
def collapse_score(feats: torch.Tensor) -> float:
    """Mean per-dimension std of l2-normalized features times sqrt(d): ~1 when spread, ~0 when collapsed."""
    z = torch.nn.functional.normalize(feats.float(), dim=1)
    return float(z.std(0).mean() * z.shape[1] ** 0.5)
