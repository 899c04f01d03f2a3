"""Optimizers: LARS as in BYOL's official code, SGD and AdamW; parameter groups with the weight-decay rule
(biases, norms, position embedding and class tokens), per-group lr / wd scales and gradient clipping."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import nn

from ssl_bench.registry import OPTIMIZERS


def no_decay_tokens(model: nn.Module) -> set[str]:
    """Full names of the parameters a submodule lists in timm's `no_weight_decay()` (a ViT: pos_embed,
    cls_token, reg_token, dist_token); a method's head may declare its own (e.g. a mask token) the same way."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        listed = getattr(module, "no_weight_decay", None)
        if callable(listed):
            names |= {f"{prefix}.{n}" if prefix else n for n in listed()}
    return names


def decays(name: str, p: torch.Tensor, exclude_bias_and_norm: bool, tokens: set[str]) -> bool:
    """The weight-decay rule, in one place: biases and norm parameters (ndim <= 1, or named *.bias) are not
    decayed when exclude_bias_and_norm [DM optimizers.py; DINO utils.get_params_groups], nor the position
    embedding and class / register tokens listed in `tokens` (timm's no_weight_decay; MAE lr_decay.py)."""
    if exclude_bias_and_norm and (p.ndim <= 1 or name.endswith(".bias")):
        return False
    return name not in tokens


def param_groups(model: nn.Module, weight_decay: float, exclude_bias_and_norm: bool = True,
                 exclude_tokens: bool = True, layer_decay: float = 1.0,
                 base_groups: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Optimizer groups of the trainable parameters, split by the weight-decay rule (`decays`) and, with
    layer_decay < 1, by ViT layer (engine/layer_decay.py). Each group carries `wd_scale` (1 or 0), `lr_scale`
    and `lars_exclude` (no decay, no LARS adaptation); the trainer sets lr = schedule * lr_scale and
    weight_decay = schedule * wd_scale at every step.

    `base_groups` ([{"params": [...], "lr_scale": 0.024, ...}, ...]): a first partition with keys of its own
    (a method's bias lr, a fixed-lr predictor: `fixed_lr`), each split again by the same rule, its lr_scale and
    wd_scale multiplying the rule's; default: one group of all parameters."""
    from ssl_bench.engine.layer_decay import layer_scales

    names = {id(p): n for n, p in model.named_parameters()}
    tokens = no_decay_tokens(model) if exclude_tokens else set()
    scales = layer_scales(model, layer_decay) if layer_decay != 1.0 else {}
    groups: dict[tuple, dict[str, Any]] = {}
    for b, base in enumerate(base_groups or [{"params": list(model.parameters())}]):
        extra = {k: v for k, v in base.items() if k != "params"}
        for p in base["params"]:
            if not p.requires_grad:
                continue
            name = names[id(p)]
            decay = decays(name, p, exclude_bias_and_norm, tokens)
            layer, scale = scales.get(name, (0, 1.0))
            wd_scale = extra.get("wd_scale", 1.0) if decay else 0.0
            group = groups.setdefault((b, layer, not decay), {
                **extra, "params": [], "weight_decay": weight_decay * wd_scale, "wd_scale": wd_scale,
                "lars_exclude": not decay, "lr_scale": scale * extra.get("lr_scale", 1.0)})
            group["params"].append(p)
    return [groups[key] for key in sorted(groups)]  # decayed before excluded, lower layers first


class LARS(torch.optim.Optimizer):
    """g <- g + wd*w; g <- g * eta*||w||/||g|| (1 if either norm is 0); m <- mu*m + g; w <- w - lr*m.

    Groups with lars_exclude=True skip both the decay and the trust ratio [DM optimizers.py, protocols.md].
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 1e-3):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta,
                                  "lars_exclude": False})

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if not group["lars_exclude"]:
                if group["weight_decay"]:
                    grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
                w_norm = torch.stack(torch._foreach_norm(params))
                g_norm = torch.stack(torch._foreach_norm(grads))
                ok = (w_norm > 0) & (g_norm > 0)
                trust = torch.where(ok, group["eta"] * w_norm / g_norm.clamp_min(1e-30), torch.ones_like(w_norm))
                grads = torch._foreach_mul(grads, list(trust.unbind()))
            bufs = []
            for p, g in zip(params, grads):
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                bufs.append(state["momentum_buffer"])
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, grads)
            torch._foreach_add_(params, bufs, alpha=-group["lr"])
        return loss


def method_partition(model: nn.Module) -> list[dict[str, Any]] | None:
    """The model's `lr_groups()` (ssl_bench.method.Method: the parameters whose lr departs from the schedule,
    with lr_scale / fixed_lr) plus one group of every other parameter, as param_groups' base_groups; None for a
    model that names none."""
    declared = getattr(model, "lr_groups", None)
    declared = [g for g in (declared() if callable(declared) else []) if g["params"]]
    if not declared:
        return None
    named = {id(p) for g in declared for p in g["params"]}
    return [*declared, {"params": [p for p in model.parameters() if id(p) not in named]}]


def scheduled_lr(group: dict[str, Any], lr: float, peak: float) -> float:
    """A group's lr at a step whose schedule gives `lr`: the peak for fixed_lr groups, times lr_scale."""
    return (peak if group.get("fixed_lr", False) else lr) * group.get("lr_scale", 1.0)


def build_optimizer(model: nn.Module, recipe: dict[str, Any], lr: float,
                    base_groups: list[dict[str, Any]] | None = None) -> torch.optim.Optimizer:
    """The recipe's optimizer over param_groups (keys the recipe lacks take OPTIM_DEFAULTS' values); the base
    partition is `base_groups`, else the model's own lr groups (method_partition)."""
    from ssl_bench.method import OPTIM_DEFAULTS

    recipe = {**OPTIM_DEFAULTS, **recipe}
    groups = param_groups(model, recipe["weight_decay"], recipe["exclude_bias_and_norm"],
                          recipe["exclude_tokens"], recipe["layer_decay"], base_groups or method_partition(model))
    for group in groups:
        group["lr"] = scheduled_lr(group, lr, lr)
    return OPTIMIZERS.get(recipe["optimizer"], where="optim.optimizer")(groups, lr, recipe)


OptimizerFactory = Callable[[list[dict[str, Any]], float, dict[str, Any]], torch.optim.Optimizer]
# `@register_optimizer("name")` on fn(param groups, peak lr, the optim recipe) -> torch Optimizer; a suite picks it
# with `optim: {optimizer: name}` (checked against this registry). Its docstring's first line is its description.
register_optimizer: Callable[..., Callable[[OptimizerFactory], OptimizerFactory]] = OPTIMIZERS.register


@register_optimizer("lars")
def _lars(groups: list[dict[str, Any]], lr: float, recipe: dict[str, Any]) -> torch.optim.Optimizer:
    """LARS as in BYOL's official code: trust ratio eta * ||w|| / ||g + wd w||, momentum"""
    return LARS(groups, lr=lr, momentum=recipe["momentum"], eta=recipe["lars_eta"])


@register_optimizer("sgd")
def _sgd(groups: list[dict[str, Any]], lr: float, recipe: dict[str, Any]) -> torch.optim.Optimizer:
    """SGD with momentum (torch.optim.SGD)"""
    return torch.optim.SGD(groups, lr=lr, momentum=recipe["momentum"])


@register_optimizer("adamw")
def _adamw(groups: list[dict[str, Any]], lr: float, recipe: dict[str, Any]) -> torch.optim.Optimizer:
    """AdamW with the recipe's betas (torch.optim.AdamW); weight decay per group"""
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(recipe["betas"]))


def schedule_step(opt: torch.optim.Optimizer, recipe: dict[str, Any], step: int, total: int, warmup: int,
                  peak_lr: float) -> float:
    """Step `step`'s lr (warmup + cosine to min_lr) and weight decay (constant, or cosine to weight_decay_end)
    in every parameter group, each scaled by its group's lr_scale / wd_scale; returns the lr."""
    from ssl_bench.engine.schedules import cosine_weight_decay, warmup_cosine

    lr = warmup_cosine(step, total, warmup, peak_lr, recipe.get("min_lr", 0.0))
    wd = cosine_weight_decay(step, total, recipe["weight_decay"], recipe.get("weight_decay_end"))
    set_hyperparameters(opt, lr, wd, peak_lr)
    return lr


def set_hyperparameters(opt: torch.optim.Optimizer, lr: float, weight_decay: float, peak_lr: float) -> None:
    """This step's lr and weight decay in every group: scaled by the group's lr_scale / wd_scale; a group with
    `fixed_lr` keeps the peak lr (times its scale) instead of following the schedule."""
    for group in opt.param_groups:
        group["lr"] = scheduled_lr(group, lr, peak_lr)
        group["weight_decay"] = weight_decay * group.get("wd_scale", 1.0)


@torch.no_grad()
def clip_gradients(params: Iterable[torch.Tensor], max_norm: float, mode: str = "total") -> None:
    """total: scale all gradients so that their joint L2 norm is at most max_norm (torch clip_grad_norm_; MAE,
    timm). per_param: each tensor's gradient norm at most max_norm on its own, as DINO does (utils.py
    clip_gradients: coefficient max_norm / (norm + 1e-6) where it is below 1)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    if mode == "total":
        _clip_total(grads, max_norm)
        return
    norms = torch.stack(torch._foreach_norm(grads))
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, list(coef.unbind()))


def _clip_total(grads: list[torch.Tensor], max_norm: float) -> None:
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, coef)
