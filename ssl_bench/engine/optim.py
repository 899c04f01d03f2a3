"""Optimizers: LARS as in BYOL's official code, SGD and AdamW, with bias/norm exclusion."""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float, exclude_bias_and_norm: bool) -> list[dict[str, Any]]:
    """Biases and norm parameters (ndim <= 1) get no weight decay and no LARS adaptation [DM optimizers.py]."""
    regular, excluded = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (excluded if exclude_bias_and_norm and p.ndim <= 1 else regular).append(p)
    groups = [{"params": regular, "weight_decay": weight_decay, "lars_exclude": False}]
    if excluded:
        groups.append({"params": excluded, "weight_decay": 0.0, "lars_exclude": True})
    return groups


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


def with_lr_groups(groups: list[dict[str, Any]], model: nn.Module, lr: float) -> list[dict[str, Any]]:
    """Split each optimizer group by the model's `lr_groups()` (ssl_bench.method.Method): the parameters a
    method names get that group's lr_scale / fixed_lr (and lr = lr * lr_scale to start); the rest keep the
    group as it is. Groups are unchanged for a model that names none."""
    declared = getattr(model, "lr_groups", None)
    owner = {id(p): (float(g.get("lr_scale", 1.0)), bool(g.get("fixed_lr", False)))
             for g in (declared() if callable(declared) else []) for p in g["params"]}
    if not owner:
        return groups
    out = []
    for group in groups:
        split: dict[tuple[float, bool], list] = {}
        for p in group["params"]:
            split.setdefault(owner.get(id(p), (1.0, False)), []).append(p)
        for (scale, fixed), params in split.items():
            out.append({**group, "params": params, "lr": lr * scale, "lr_scale": scale, "fixed_lr": fixed})
    return out


def scheduled_lr(group: dict[str, Any], lr: float, peak: float) -> float:
    """A group's lr at a step whose schedule gives `lr`: the peak for fixed_lr groups, times lr_scale."""
    return (peak if group.get("fixed_lr", False) else lr) * group.get("lr_scale", 1.0)


def build_optimizer(model: nn.Module, recipe: dict[str, Any], lr: float) -> torch.optim.Optimizer:
    groups = param_groups(model, recipe["weight_decay"], recipe["exclude_bias_and_norm"])
    groups = with_lr_groups(groups, model, lr)
    name = recipe["optimizer"]
    if name == "lars":
        return LARS(groups, lr=lr, momentum=recipe["momentum"], eta=recipe["lars_eta"])
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=recipe["momentum"])
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(recipe["betas"]))
    raise ValueError(f"unknown optimizer {name!r}")
