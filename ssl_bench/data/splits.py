"""Deterministic stratified hold-out splits (val/test carved from a dataset without official ones)."""
from __future__ import annotations

import torch


def stratum_of(labels: torch.Tensor) -> torch.Tensor:
    """The class each sample is stratified by: its label, or for multi-label rows the first positive
    label (rows with no positive label form one extra group, -1)."""
    if labels.dim() == 1:
        return labels.long()
    positive = labels > 0
    first = positive.int().argmax(dim=1)
    return torch.where(positive.any(dim=1), first, torch.full_like(first, -1)).long()


def _held_counts(counts: torch.Tensor, fraction: float) -> torch.Tensor:
    """How many of each class to hold out: largest-remainder rounding so the total is round(fraction * n),
    then at least one held and one kept for every class that has two or more samples."""
    exact = counts.double() * fraction
    held = exact.floor().long()
    missing = int(round(fraction * int(counts.sum()))) - int(held.sum())
    if missing > 0:
        # ties broken by class order so the allocation depends on the labels only
        order = torch.argsort(-(exact - held), stable=True)
        held[order[:missing]] += 1
    if fraction > 0:
        two_or_more = counts >= 2
        held = torch.where(two_or_more, held.clamp(1, None), held)
        held = torch.where(two_or_more, torch.minimum(held, counts - 1), held)
    return held


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices 0..N-1 into (keep_idx, held_idx) with about `fraction` of every class held out.

    Deterministic in (labels, fraction, seed); both parts are sorted so subsets keep the dataset order.
    Every class with at least two samples appears in both parts (when 0 < fraction < 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    n = len(labels)
    strata = stratum_of(labels)
    gen = torch.Generator().manual_seed(int(seed))
    shuffled = torch.randperm(n, generator=gen)
    # group by class, random order inside each class
    grouped = shuffled[torch.argsort(strata[shuffled], stable=True)]
    _, counts = torch.unique(strata, sorted=True, return_counts=True)  # ascending, like `grouped`
    held_per_class = _held_counts(counts, fraction)
    starts = torch.cumsum(counts, 0) - counts
    rank_in_class = torch.arange(n) - torch.repeat_interleave(starts, counts)
    held_mask_grouped = rank_in_class < torch.repeat_interleave(held_per_class, counts)
    held = torch.sort(grouped[held_mask_grouped]).values
    keep = torch.sort(grouped[~held_mask_grouped]).values
    return keep, held
