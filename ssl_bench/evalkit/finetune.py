"""Supervised training of linear heads on an encoder, shared by linear_sgd, semi_supervised and transfer.

Recipe of the BYOL/SimCLR evaluations [protocols.md]: SGD with Nesterov momentum 0.9, cosine schedule per
step, random-resized-crop + flip on training images, resize + center crop at test time. A frozen encoder
(linear_sgd) stays in eval mode and runs without gradients, so several heads (one per learning rate) share
each batch's features; fine-tuning trains a copy of the encoder, never ctx.encoder itself.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.data.augment import SUPERVISED_VIEW, ViewRecipe, adapt_channels, eval_transform, random_view
from ssl_bench.data.loader import iterate_batches
from ssl_bench.data.types import DatasetBundle, FolderBatch, ImageSet
from ssl_bench.engine.schedules import warmup_cosine
from ssl_bench.errors import UserError
from ssl_bench.evaluation import EvalContext
from ssl_bench.evalkit.probe import probe_metric

HEAD_INIT_STD = 0.01  # small random head, as SimCLR's fine-tuning head


@dataclass(frozen=True)
class InputPrep:
    """How images reach the encoder: its input size, channels and normalization, plus the training crop."""

    image_size: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    recipe: ViewRecipe = SUPERVISED_VIEW

    @classmethod
    def from_context(cls, ctx: EvalContext, crop_scale: Sequence[float] = (0.08, 1.0),
                     flip_p: float = 0.5, crop_sampler: str = "torchvision") -> "InputPrep":
        # Training crops are resized with eval_view's bilinear kernel: with bicubic here and bilinear at test,
        # a frozen encoder saw features 38% apart on 8 -> 16 px digits and its SGD probe lost 7.5 points.
        return cls(ctx.image_size, ctx.in_chans, tuple(ctx.mean), tuple(ctx.std),
                   replace(SUPERVISED_VIEW, crop_scale=tuple(crop_scale), flip_p=float(flip_p),
                           interpolation="bilinear", crop_sampler=crop_sampler))

    def train_view(self, images: torch.Tensor | FolderBatch, generator: torch.Generator) -> torch.Tensor:
        # folder images: crops of the whole image, resized with their test view's bicubic kernel [DM dataset.py]
        recipe = replace(self.recipe, interpolation="bicubic") if isinstance(images, FolderBatch) else self.recipe
        x = random_view(images, recipe, self.image_size, self.mean, self.std, generator)
        return adapt_channels(x, self.in_chans)

    def eval_view(self, images: torch.Tensor | FolderBatch) -> torch.Tensor:
        return adapt_channels(eval_transform(images, self.image_size, self.mean, self.std), self.in_chans)


def adaptation_info(bundle: DatasetBundle, ctx: EvalContext) -> dict[str, Any]:
    """What the evaluation did to fit the dataset's images to the encoder (recorded in results)."""
    c = bundle.channels
    channels = None if c == ctx.in_chans else ("repeat gray to 3 channels" if c == 1 else "luminance to 1 channel")
    return {"native_size": bundle.native_size, "input_size": ctx.image_size,
            "resized": bundle.native_size != ctx.image_size, "native_channels": c, "input_channels": ctx.in_chans,
            "channel_adaptation": channels}


class Classifier(nn.Module):
    """Encoder + `num_heads` linear heads. frozen=True keeps the encoder in eval mode without gradients."""

    def __init__(self, encoder: nn.Module, feature_dim: int, num_classes: int, num_heads: int = 1,
                 frozen: bool = False, seed: int = 0):
        super().__init__()
        self.encoder, self.frozen = encoder, frozen
        self.heads = nn.ModuleList(nn.Linear(feature_dim, num_classes) for _ in range(num_heads))
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for head in self.heads:
                head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * HEAD_INIT_STD)
                head.bias.zero_()

    def train(self, mode: bool = True) -> "Classifier":
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, heads x B x classes."""
        if self.frozen:
            with torch.no_grad():
                f = self.encoder(x).flatten(1)
        else:
            f = self.encoder(x).flatten(1)
        return torch.stack([head(f) for head in self.heads])


def _loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed over heads (independent parameters, so each head gets its own gradient)."""
    if y.dim() == 2:  # multi-label: binary cross-entropy per class; -1 (VOC "difficult" only) left out
        target = (y > 0).to(logits.dtype).expand(len(logits), *y.shape)
        weight = (y >= 0).to(logits.dtype).expand(len(logits), *y.shape)
        return F.binary_cross_entropy_with_logits(logits, target, weight, reduction="none").sum(-1).mean(-1).sum()
    return sum(F.cross_entropy(head_logits, y) for head_logits in logits)


def train_classifier(model: Classifier, data: ImageSet, prep: InputPrep, *, lrs: Sequence[float], epochs: int,
                     batch_size: int, seed: int, device: torch.device, weight_decay: float = 0.0,
                     momentum: float = 0.9, num_workers: int = 0,
                     on_epoch: Callable[[], None] | None = None) -> Classifier:
    """SGD Nesterov with per-step cosine decay (no warmup); head k trains at lrs[k], the encoder (unless
    frozen, then with a single head) at lrs[0]. Batches of one image are avoided: BN cannot train on them.
    `num_workers` DataLoader workers read a folder dataset's images (the order and crops stay the same).
    `on_epoch()` runs after each epoch (a progress bar)."""
    if len(lrs) != len(model.heads) or (not model.frozen and len(lrs) != 1):
        raise ValueError("one lr per head; several heads only on a frozen encoder")
    groups = [{"params": list(head.parameters()), "lr": lr, "base_lr": lr} for head, lr in zip(model.heads, lrs)]
    if not model.frozen:
        groups[0]["params"] += [p for p in model.encoder.parameters() if p.requires_grad]
    opt = torch.optim.SGD(groups, lr=lrs[0], momentum=momentum, nesterov=True, weight_decay=weight_decay)
    drop_last = len(data) > batch_size  # the whole set in one batch when it is small
    per_epoch = len(data) // batch_size if drop_last else 1
    total = max(epochs * per_epoch, 1)
    gen = torch.Generator().manual_seed(int(seed))
    model.to(device).train()

    def schedule(step: int) -> None:
        for g in opt.param_groups:
            g["lr"] = warmup_cosine(step, total, 0, g["base_lr"])

    return fit_epochs(model, opt, schedule, data, prep, epochs=epochs, batch_size=batch_size, gen=gen,
                      drop_last=drop_last, device=device, num_workers=num_workers, on_epoch=on_epoch)


def fit_epochs(model: Classifier, opt: torch.optim.Optimizer, schedule: Callable[[int], None], data: ImageSet,
               prep: InputPrep, *, epochs: int, batch_size: int, gen: torch.Generator, drop_last: bool,
               device: torch.device, num_workers: int = 0,
               on_epoch: Callable[[], None] | None = None) -> Classifier:
    """The fine-tuning loop both recipes share: `schedule(step)` sets the optimizer's lr (and wd) before each
    step, then one step on the training view of a batch; `on_epoch()` after each epoch."""
    step = 0
    for _ in range(epochs):
        for images, y in iterate_batches(data, batch_size, shuffle=True, generator=gen, drop_last=drop_last,
                                         device=device, num_workers=num_workers):
            schedule(step)
            loss = _loss(model(prep.train_view(images, gen)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        if on_epoch is not None:
            on_epoch()
    return model.eval()


@torch.no_grad()
def predict(model: Classifier, data: ImageSet, prep: InputPrep, device: torch.device,
            batch_size: int = 256, num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores heads x N x classes, labels), on the CPU, in dataset order, model in eval mode."""
    model.eval()
    scores, labels = [], []
    for images, y in iterate_batches(data, batch_size, shuffle=False, generator=None, drop_last=False,
                                     device=device, num_workers=num_workers):
        scores.append(model(prep.eval_view(images)).float())
        labels.append(y)
    return torch.cat(scores, dim=1).cpu(), torch.cat(labels).cpu()


def trainable_encoder(ctx: EvalContext, from_scratch: bool) -> nn.Module:
    """A copy of the frozen encoder made trainable, or a fresh one (the supervised baseline)."""
    enc = ctx.new_encoder() if from_scratch else copy.deepcopy(ctx.encoder)
    return enc.requires_grad_(True).train().to(ctx.device)


def finetune_grid(ctx: EvalContext, bundle: DatasetBundle, train: ImageSet, grid: dict[str, Sequence[Any]], *,
                  prep: InputPrep, from_scratch: bool, batch_size: int, select_by: str, where: str,
                  val: ImageSet | None = None) -> tuple[Classifier, dict[str, Any], list[dict[str, Any]]]:
    """Fine-tune encoder + a new head for every combination of `grid` (keys lr, epochs, weight_decay) and keep
    the one best on `val` (default bundle.val) by `select_by` (ties: the first). Returns (model, chosen config,
    val curve)."""
    val = bundle.val if val is None else val
    if len(val) == 0:
        raise UserError(f"{where}: dataset '{bundle.name}' has an empty val split; allowed: a dataset with a "
                        "held-out val split to choose the fine-tuning hyperparameters")
    keys = list(grid)
    best, best_cfg, best_val, curve = None, {}, float("-inf"), []
    configs = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    task = ctx.progress(f"{where.removeprefix('evaluation ')} {bundle.name}: fine-tune {len(configs)} config(s) on "
                        f"{len(train)} images", sum(c["epochs"] for c in configs), "epoch")
    for i, cfg in enumerate(configs):
        model = Classifier(trainable_encoder(ctx, from_scratch), ctx.feature_dim, bundle.num_classes,
                           seed=ctx.seed + i)
        train_classifier(model, train, prep, lrs=[cfg["lr"]], epochs=cfg["epochs"], batch_size=batch_size,
                         seed=ctx.seed + i, device=ctx.device, weight_decay=cfg.get("weight_decay", 0.0),
                         num_workers=ctx.num_workers, on_epoch=task.update)
        scores, y = predict(model, val, prep, ctx.device, batch_size, ctx.num_workers)
        score = probe_metric(scores[0], y, select_by)
        curve.append({**cfg, "val": score})
        task.note(**{k: f"{v:g}" for k, v in cfg.items()}, val=f"{score:.2f}")
        if score > best_val:
            best, best_cfg, best_val = model, cfg, score
        else:
            del model
    task.close()
    return best, best_cfg, curve


def number_list(value: Any, field: str, kind: type = float, allow_zero: bool = False) -> list:
    """A non-empty list of positive (or >= 0) numbers; strings like '1e-4' (YAML reads them as text) accepted."""
    allowed = f"a non-empty list of {'non-negative' if allow_zero else 'positive'} " \
              f"{'integers' if kind is int else 'numbers'}"
    if not isinstance(value, (list, tuple)) or not value:
        raise UserError(f"{field}: bad value {value!r}; allowed: {allowed}")
    out = []
    for x in value:
        try:
            ok = not isinstance(x, bool) and (isinstance(x, int) if kind is int else True)
            num = kind(float(x)) if ok else None
        except (TypeError, ValueError):
            num = None
        if num is None or not (num >= 0 if allow_zero else num > 0) or num != num or num == float("inf"):
            raise UserError(f"{field}: bad value {value!r}; allowed: {allowed}")
        out.append(num)
    return out


def batch_scaled_lrs(lrs: Sequence[float], batch_size: int, scale: bool) -> list[float]:
    """The lrs an evaluation trains with. `lr_batch_scaling: true`: the listed lrs are per 256 images and
    scale linearly with the batch, lr = value * batch_size / 256, as [DM schedules.py learning_schedule]
    scales the eval configs' base_learning_rate; false (the default): the lrs are used as listed."""
    return [lr * batch_size / 256 for lr in lrs] if scale else list(lrs)


def positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{field}: bad value {value!r}; allowed: a positive integer")
    return value


def crop_scale(value: Any, field: str) -> tuple[float, float]:
    """A crop area range [lo, hi] with 0 < lo <= hi <= 1."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    if ok:
        try:
            lo, hi = float(value[0]), float(value[1])
            ok = 0 < lo <= hi <= 1
        except (TypeError, ValueError):
            ok = False
    if not ok:
        raise UserError(f"{field}: bad value {value!r}; allowed: [lo, hi] with 0 < lo <= hi <= 1")
    return lo, hi
