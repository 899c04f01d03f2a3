"""Frozen-encoder feature extraction, once per (dataset, split, view, kind), shared by every evaluation
(the store itself: ssl_bench.evalkit.feature_store)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ssl_bench.data.types import DatasetBundle, ImageSet
from ssl_bench.evaluation import ProgressTask, no_progress
from ssl_bench.evalkit.feature_store import FeatureStore, declared_kinds, extract_kinds

__all__ = ["collapse_score", "declared_kinds", "extract", "feature_cache", "freeze"]


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
    got, y = extract_kinds(encoder, data, ("pooled",), image_size=image_size, in_chans=in_chans, mean=mean,
                           std=std, device=device, batch_size=batch_size, num_workers=num_workers, on_batch=on_batch)
    return got["pooled"], y


def feature_cache(encoder: nn.Module, get_dataset: Callable[[str], DatasetBundle],
                  progress: Callable[..., ProgressTask] = no_progress, **kw) -> FeatureStore:
    """A memoized `features(dataset_name, split, view="eval", kind="pooled")` for EvalContext; each extraction
    shows a progress bar. `kinds=` (default pooled only) are extracted together in one pass."""
    return FeatureStore(encoder, get_dataset, progress, **kw)


@torch.no_grad()
def collapse_score(feats: torch.Tensor) -> float:
    """Mean per-dimension std of l2-normalized features times sqrt(d): ~1 when spread, ~0 when collapsed."""
    z = torch.nn.functional.normalize(feats.float(), dim=1)
    return float(z.std(0).mean() * z.shape[1] ** 0.5)
