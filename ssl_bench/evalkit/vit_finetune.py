"""End-to-end fine-tuning with AdamW and layer-wise lr decay: MAE's fine-tuning protocol (facebookresearch/mae
main_finetune.py, util/lr_decay.py param_groups_lrd, util/lr_sched.py adjust_learning_rate).

The optimizer groups come from the engine (engine/optim.param_groups): no weight decay for 1-d tensors, biases,
the position embedding and class token (timm's no_weight_decay), and with layer_decay < 1 each ViT parameter
scaled by layer_decay ** (L + 1 - layer id) (engine/layer_decay.py), the new head at the top (scale 1). The lr
warms up linearly for `warmup_epochs` and then follows a half cosine to `min_lr`, set per step as MAE does
(lr_sched.py sets it per iteration from the fractional epoch), times each group's lr_scale.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ssl_bench.data.types import ImageSet
from ssl_bench.engine.optim import param_groups, set_hyperparameters
from ssl_bench.engine.schedules import warmup_cosine
from ssl_bench.evalkit.finetune import Classifier, InputPrep, fit_epochs


def has_vit_blocks(model: torch.nn.Module) -> bool:
    """Whether `model` holds a ViT that layer-wise decay can split by block (a CNN does not)."""
    from ssl_bench.backbones.vit import is_vit

    return any(is_vit(m) for m in model.modules())


def finetune_optimizer(model: Classifier, lr: float, weight_decay: float, layer_decay: float,
                       betas: Sequence[float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW over MAE's parameter groups of encoder + head (lr = peak lr x each group's lr_scale)."""
    groups = param_groups(model, weight_decay, exclude_bias_and_norm=True, exclude_tokens=True,
                          layer_decay=layer_decay)
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))


def train_layer_decay(model: Classifier, data: ImageSet, prep: InputPrep, *, lr: float, epochs: int,
                      warmup_epochs: int, weight_decay: float, layer_decay: float, batch_size: int, seed: int,
                      device: torch.device, min_lr: float = 0.0, num_workers: int = 0,
                      on_epoch: Callable[[], None] | None = None) -> Classifier:
    """Fine-tune the (unfrozen, one-head) `model` on `data`: AdamW, per-step warm-up + cosine, layer decay."""
    if model.frozen or len(model.heads) != 1:
        raise ValueError("fine-tuning trains the encoder and one head")
    model.to(device).train()
    opt = finetune_optimizer(model, lr, weight_decay, layer_decay)
    drop_last = len(data) > batch_size
    per_epoch = len(data) // batch_size if drop_last else 1
    total, warmup = max(epochs * per_epoch, 1), warmup_epochs * per_epoch
    gen = torch.Generator().manual_seed(int(seed))
    return fit_epochs(model, opt, lambda step: set_hyperparameters(
        opt, warmup_cosine(step, total, warmup, lr, min_lr), weight_decay, lr), data, prep, epochs=epochs,
        batch_size=batch_size, gen=gen, drop_last=drop_last, device=device, num_workers=num_workers,
        on_epoch=on_epoch)
