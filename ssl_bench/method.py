"""The method contract. A plugin fills in hooks; the engine owns data, devices, optimizers and EMA.

A method reads like its paper's algorithm box: build heads in __init__, compute the loss from a
list of augmented views in `training_step`, list (online, target) pairs for the engine's EMA.

Multi-crop: a method may declare any number of views, each with its own output size (ViewRecipe.size_frac or
size_px: DINO's and SwAV's 2 global + N local crops); training_step receives them in declared order, and
`multicrop_forward` runs each run of consecutive same-size views through a network as one batch.
Schedules: `self.progress` says which optimizer step (and epoch) the coming training_step is for (the engine sets
it before every step; resumed runs continue from the checkpoint's step). `before_optimizer_step` runs between
backward and the optimizer step, where a method can leave parameters out of a step (p.grad = None).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

# Optimization recipe every method may override (the suite's `optim:` may override again).
OPTIM_DEFAULTS: dict[str, Any] = {
    "optimizer": "lars",  # a registered optimizer: lars | sgd | adamw (engine/optim.py) or a plugin's
    "base_lr": 0.3,  # lr = base_lr * global_batch / 256
    "weight_decay": 1e-6,
    "momentum": 0.9,
    "warmup_epochs": 10,
    "lars_eta": 1e-3,
    "exclude_bias_and_norm": True,  # from weight decay and LARS adaptation
    "betas": [0.9, 0.999],  # adamw only
}
# Added for ViT recipes (engine/optim.py, schedules.py, layer_decay.py). A run's config hash holds them only
# where they differ from these defaults (run_config.RunSpec.config), so runs from before them keep their ids.
VIT_OPTIM_DEFAULTS: dict[str, Any] = {
    "exclude_tokens": True,  # no decay for the position embedding and class / register tokens (no_weight_decay)
    "weight_decay_end": None,  # None: constant; else cosine from weight_decay to this [DINO main_dino.py]
    "min_lr": 0.0,  # the lr cosine's final value, not scaled by the batch [DINO main_dino.py --min_lr]
    "clip_grad": None,  # None: off; else the largest gradient norm [DINO --clip_grad 3.0]
    "clip_mode": "total",  # total: joint norm (torch clip_grad_norm_); per_param: each tensor's (DINO utils.py)
    "layer_decay": 1.0,  # layer-wise lr decay for ViTs [MAE lr_decay.py]; 1.0: off
}
OPTIM_DEFAULTS.update(VIT_OPTIM_DEFAULTS)


@dataclass(frozen=True)
class TrainProgress:
    """Where training is: the 0-based optimizer step the next training_step is for, of `total_steps`, in epoch
    `epoch` (0-based) of `steps_per_epoch` steps (a budget in steps may cut the last epoch short)."""

    step: int = 0
    total_steps: int = 1
    epoch: int = 0
    steps_per_epoch: int = 1


class Method(nn.Module):
    """Base class of a self-supervised (or baseline) method.

    Class attributes a plugin declares:
      defaults      method hyperparameters (the suite's `params:` is validated against these keys)
      optim         overrides of OPTIM_DEFAULTS (the suite's `optim:` is validated against OPTIM_DEFAULTS)
      augmentation  {"views": [view1 dict, view2 dict, ...]} keys of ssl_bench.data.augment.ViewRecipe
      needs_labels  the engine passes labels to training_step (the supervised baseline)
      trainable     False for baselines that skip pretraining (random init)
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    optim: ClassVar[dict[str, Any]] = {}
    augmentation: ClassVar[dict[str, Any]] = {"views": [{}, {}]}
    needs_labels: ClassVar[bool] = False
    trainable: ClassVar[bool] = True

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__()
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown hyperparameters {sorted(unknown)}")
        self.hparams: dict[str, Any] = {**self.defaults, **params}
        self.backbone = backbone
        self.num_classes = num_classes

    progress: TrainProgress = TrainProgress()  # set by the engine before each step (set_progress)

    def forward(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        # The engine calls the module (so DDP and torch.compile wrap one entry point).
        return self.training_step(views, labels)

    # ---- hooks -----------------------------------------------------------------------------
    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Return a dict with at least 'loss' (a scalar tensor); other entries are logged."""
        raise NotImplementedError

    def set_progress(self, progress: TrainProgress) -> None:
        """Called by the engine before each training step (and by anything that runs one, e.g. the FLOP count,
        which leaves the default: step 0). Methods read self.progress for per-step or per-epoch schedules."""
        self.progress = progress

    def before_optimizer_step(self) -> None:
        """Called after backward and before the optimizer (and a float16 GradScaler's) step, on every process,
        with the gradients already reduced over processes (still scaled by the GradScaler: setting p.grad = None
        is safe, rescaling is not). Setting p.grad = None leaves p out of this step: no update, no weight decay,
        no momentum (DINO's frozen last layer, SwAV's frozen prototypes)."""

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) module pairs the engine updates by EMA after each optimizer step."""
        return []

    def momentum_at(self, step: int, total_steps: int) -> float:
        """EMA coefficient tau after optimizer step `step` (0-based) of `total_steps`."""
        return 1.0

    def lr_groups(self) -> list[dict[str, Any]]:
        """Parameters whose learning rate departs from the schedule: [{"params": [...], "lr_scale": s,
        "fixed_lr": bool}]. lr_scale multiplies the scheduled lr (Barlow Twins' bias lr); fixed_lr keeps the
        group at the peak lr, without warmup or decay (SimSiam's predictor). Every other parameter follows the
        schedule; weight decay and LARS exclusion still follow the optimizer recipe. Default: none."""
        return []

    def record_info(self) -> dict[str, Any]:
        """Facts every result row of this run should carry (e.g. the checkpoint a `pretrained` run loaded)."""
        return {}

    def encoder(self) -> nn.Module:
        """The network that evaluations probe (the online backbone, never a projector)."""
        return self.backbone

    @classmethod
    def view_recipes(cls, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The views for these hyperparameters (e.g. SimCLR's color strength); default: the declared ones."""
        return [dict(v) for v in cls.augmentation["views"]]

    @classmethod
    def optim_recipe(cls) -> dict[str, Any]:
        return {**OPTIM_DEFAULTS, **cls.optim}

    @classmethod
    def batch_norm_warning(cls, world_size: int, sync_bn: bool) -> str | None:
        """One line the engine prints before training when this method's recipe needs batch-norm statistics it
        will not get here (MoCo v2's shuffle-BN); None: nothing to say."""
        return None


def cosine_momentum(base: float, step: int, total_steps: int, final: float = 1.0) -> float:
    """BYOL/MoCo v3 schedule: tau_k = final - (final - base) * (cos(pi k / K) + 1) / 2."""
    if total_steps <= 0:
        return base
    k = min(max(step, 0), total_steps)
    return final - (final - base) * (math.cos(math.pi * k / total_steps) + 1) / 2


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def size_groups(views: list[torch.Tensor]) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive views with one spatial size, in order (2 global + 6 local crops:
    [(0, 2), (2, 8)])."""
    groups: list[tuple[int, int]] = []
    for i, v in enumerate(views):
        if groups and views[groups[-1][0]].shape[-2:] == v.shape[-2:]:
            groups[-1] = (groups[-1][0], i + 1)
        else:
            groups.append((i, i + 1))
    return groups


def multicrop_forward(net: nn.Module, views: list[torch.Tensor]) -> torch.Tensor:
    """net's outputs for every view, concatenated in view order (V * B rows): one call per run of consecutive
    same-size views, on their concatenation, as DINO's MultiCropWrapper and SwAV's ResNet.forward do (so those
    views share BatchNorm statistics). Views of one size that are not consecutive get separate calls."""
    outs = [net(views[a] if b - a == 1 else torch.cat(views[a:b])) for a, b in size_groups(views)]
    return outs[0] if len(outs) == 1 else torch.cat(outs)
