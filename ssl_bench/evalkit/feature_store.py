"""One pass: the frozen encoder's outputs per (dataset, split, view, kind), extracted once and shared by every
evaluation of a run (kNN, linear, linear_sgd's val/test inputs, the attentive probe, the quality metrics).

kind: "pooled" (B, D) float32 features, what `encoder(x)` gives; "tokens" (B, N, C) float16 spatial tokens
(a ViT's patch tokens, a CNN's last feature map's positions: ssl_bench.backbones.feature_tokens), half precision
to bound memory. One forward pass gives both: forward_tokens then pool (ViT), forward_features then forward_head
(timm CNNs). The kinds a run's evaluations declare (`Evaluation.feature_kinds`) are extracted together the first
time any of them is asked for, so asking for pooled features and later for tokens costs one pass, not two.

view: "eval" (resize + center crop, the test view) or "crop<i>" (the i-th random view: random-resized crop
(0.08, 1) + flip, bilinear, drawn from a generator seeded by (seed, i): LiDAR's augmented views). A split may
name an evenly spaced subset, "test/1000" (the first of every len/1000 images), so a metric that needs many
views of a few images does not pay for views of all of them.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ssl_bench import distributed as dist
from ssl_bench.backbones.vit import is_vit
from ssl_bench.data.augment import SUPERVISED_VIEW, adapt_channels, eval_transform, random_view
from ssl_bench.data.loader import iterate_batches
from ssl_bench.data.types import DatasetBundle, ImageSet
from ssl_bench.evaluation import ProgressTask, no_progress
from ssl_bench.registry import EVALUATIONS

KINDS = ("pooled", "tokens")
TOKEN_DTYPE = torch.float16  # a 10k-image set of 64 tokens x 192 dims: 236 MiB (float32: twice that)
CROP_VIEW = replace(SUPERVISED_VIEW, interpolation="bilinear")  # linear_sgd's training crop, the test kernel


def declared_kinds(evaluations: Iterable[str]) -> set[str]:
    """The feature kinds these registered evaluations ask for (`Evaluation.feature_kinds`), pooled always."""
    kinds = {"pooled"}
    for name in evaluations:
        if name in EVALUATIONS.names():
            kinds |= set(getattr(EVALUATIONS.get(name), "feature_kinds", ("pooled",)))
    return kinds


def encode(encoder: nn.Module, x: torch.Tensor, kinds: Iterable[str]) -> dict[str, torch.Tensor]:
    """The asked kinds of one batch from one forward pass ("pooled" equals encoder(x).flatten(1))."""
    kinds = set(kinds)
    if "tokens" not in kinds:
        return {"pooled": encoder(x).float().flatten(1)}
    if is_vit(encoder):
        t = encoder.forward_tokens(x)
        out = {"tokens": t[:, encoder.num_prefix_tokens:]}
        if "pooled" in kinds:
            out["pooled"] = encoder.pool(t).float().flatten(1)
        return out
    if not (hasattr(encoder, "forward_features") and hasattr(encoder, "forward_head")):
        raise ValueError(f"{type(encoder).__name__} has no forward_features/forward_head: no spatial tokens; "
                         "allowed: a timm backbone")
    fmap = encoder.forward_features(x)
    if fmap.dim() != 4:
        raise ValueError(f"{type(encoder).__name__}.forward_features gave shape {tuple(fmap.shape)}; expected a "
                         "(B, C, H, W) feature map")
    out = {"tokens": fmap.flatten(2).transpose(1, 2)}
    if "pooled" in kinds:  # timm: forward(x) = forward_head(forward_features(x))
        out["pooled"] = encoder.forward_head(fmap).float().flatten(1)
    return out


def split_images(bundle: DatasetBundle, split: str) -> ImageSet:
    """The images of `split` ("train", "val", "test", or "test/1000": 1000 evenly spaced ones)."""
    base, _, n = split.partition("/")
    data = bundle.split(base)
    if not n:
        return data
    if not n.isdigit() or int(n) < 1:
        raise ValueError(f"split {split!r}: expected NAME/COUNT with a positive count")
    if int(n) >= len(data):
        return data
    return data.subset(torch.linspace(0, len(data) - 1, int(n)).round().long())


def _view_fn(view: str, seed: int, image_size: int, in_chans: int, mean, std) -> Callable:
    if view == "eval":
        return lambda images: adapt_channels(eval_transform(images, image_size, mean, std), in_chans)
    if view.startswith("crop") and view[4:].isdigit():
        gen = torch.Generator().manual_seed(int(seed) * 100_003 + int(view[4:]))
        return lambda images: adapt_channels(random_view(images, CROP_VIEW, image_size, mean, std, gen), in_chans)
    raise ValueError(f"unknown view {view!r}; allowed: 'eval' or 'crop<i>'")


@torch.no_grad()
def extract_kinds(encoder: nn.Module, data: ImageSet, kinds: Iterable[str], *, image_size: int, in_chans: int,
                  mean, std, device: torch.device, view: str = "eval", seed: int = 0, batch_size: int = 256,
                  num_workers: int = 0, on_batch: Callable[[], None] | None = None
                  ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """({kind: CPU tensor in dataset order}, labels) of every image of `data`, one encoder pass per image.

    Outputs are written into preallocated CPU tensors (tokens in TOKEN_DTYPE), so the peak is the stored size
    plus one batch. Under torchrun each rank extracts its strided shard and the shards are gathered in order."""
    if encoder.training:
        raise RuntimeError("extract() needs an encoder in eval mode (call freeze first)")
    kinds = sorted(set(kinds))
    ws, rank, n = dist.world_size(), dist.rank(), len(data)
    part = data.subset(torch.arange(rank, n, ws)) if ws > 1 else data
    prep = _view_fn(view, seed, image_size, in_chans, mean, std)
    out: dict[str, torch.Tensor] = {}
    labels, at = [], 0
    for images, y in iterate_batches(part, batch_size, shuffle=False, generator=None, drop_last=False,
                                     device=device, num_workers=num_workers):
        got = encode(encoder, prep(images), kinds)
        for k, t in got.items():
            if k not in out:
                dtype = TOKEN_DTYPE if k == "tokens" else torch.float32
                out[k] = torch.empty((len(part), *t.shape[1:]), dtype=dtype)
            out[k][at:at + len(t)] = t.to("cpu", out[k].dtype)
        at += len(y)
        labels.append(y.cpu())
        if on_batch is not None:
            on_batch()
    y = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
    out = {k: out.get(k, torch.zeros(0, 0)) for k in kinds}
    if ws > 1:  # strided shards -> gather and interleave back to dataset order
        out = {k: gather_strided(v.to(device), n).cpu() for k, v in out.items()}
        y = gather_strided(y.to(device), n).cpu()
    return out, y


def gather_strided(x: torch.Tensor, n: int) -> torch.Tensor:
    """Every rank's strided shard (rank r holds images r, r + ws, ...) back in dataset order, on every rank."""
    ws = dist.world_size()
    per = (n + ws - 1) // ws
    pad = torch.zeros((per - x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
    full = dist.gather_no_grad(torch.cat([x, pad]))  # (ws * per, ...), rank-major
    order = full.view(ws, per, *x.shape[1:]).transpose(0, 1).reshape(ws * per, *x.shape[1:])
    return order[:n]


class FeatureStore:
    """`store(dataset, split, view="eval", kind="pooled") -> (features, labels)`, memoized per key.

    `kinds` are extracted together for the eval view (declare them before the first request: `want`);
    `passes` counts encoder passes over a (dataset, split, view) for the tests and the logs."""

    def __init__(self, encoder: nn.Module, get_dataset: Callable[[str], DatasetBundle],
                 progress: Callable[..., ProgressTask] = no_progress, kinds: Iterable[str] = ("pooled",),
                 seed: int = 0, **kw: Any):
        self.encoder, self.get_dataset, self.progress, self.seed, self.kw = encoder, get_dataset, progress, seed, kw
        self.kinds: set[str] = set()
        self.want(kinds)
        self.cache: dict[tuple[str, str, str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.passes: list[tuple[str, str, str, tuple[str, ...]]] = []

    def want(self, kinds: Iterable[str]) -> None:
        bad = set(kinds) - set(KINDS)
        if bad:
            raise ValueError(f"unknown feature kind(s) {sorted(bad)}; allowed: {', '.join(KINDS)}")
        self.kinds |= set(kinds)

    def __call__(self, name: str, split: str, view: str = "eval", kind: str = "pooled"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        if (name, split, view, kind) not in self.cache:
            self.want([kind])
            wanted = (self.kinds | {kind}) if view == "eval" else {kind}
            missing = tuple(sorted(k for k in wanted if (name, split, view, k) not in self.cache))
            data = split_images(self.get_dataset(name), split)
            desc = f"features {name}/{split}" + ("" if view == "eval" else f" ({view})")
            with self.progress(desc, -(-len(data) // self.kw.get("batch_size", 256)), "batch") as task:
                got, y = extract_kinds(self.encoder, data, missing, view=view, seed=self.seed,
                                       on_batch=task.update, **self.kw)
            self.passes.append((name, split, view, missing))
            for k, t in got.items():
                self.cache[(name, split, view, k)] = (t, y)
        return self.cache[(name, split, view, kind)]
