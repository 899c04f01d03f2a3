"""SyncBatchNorm for distributed pretraining on any device.

torch.nn.SyncBatchNorm only runs on GPUs (DDP refuses it on CPU), yet CI and laptops run torchrun with gloo
on CPUs. On CUDA we use PyTorch's fused SyncBatchNorm (through timm's converter, which keeps timm's
BatchNormAct layers intact); elsewhere DistBatchNorm computes the same statistics with two differentiable
all-reduces. Both normalize with the mean and biased variance of the union of every rank's batch and update
the running variance with the unbiased estimate, exactly like BatchNorm on one process with the global batch.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ssl_bench import distributed as dist


class DistBatchNorm(_BatchNorm):
    """BatchNorm over all ranks' samples in training; plain BatchNorm otherwise. Same state_dict as BatchNorm.

    A converted timm BatchNormAct keeps its `drop` and `act` children, applied after the normalization.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def _post(self, y: torch.Tensor) -> torch.Tensor:
        for name in ("drop", "act"):
            m = getattr(self, name, None)
            if isinstance(m, nn.Module):
                y = m(y)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.world_size() > 1):
            return self._post(super().forward(x))
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # statistics in >= fp32
        local_n = xf.new_full((1,), x.numel() // x.shape[1])
        total = dist.all_reduce_with_grad(torch.cat([xf.sum(dims), local_n]))
        n = total[-1].detach()
        mean = total[:-1] / n
        centered = xf - mean.view(shape)
        var = dist.all_reduce_with_grad((centered * centered).sum(dims)) / n  # two passes: as exact as BN
        y = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), f)
                unbiased = var.detach() * n / (n - 1).clamp(min=1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), f)
        return self._post(y.to(x.dtype))


def _convert_cpu(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, DistBatchNorm):
        out = DistBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats)
        if module.affine:  # share the Parameter objects: requires_grad flags and optimizer identity carry over
            out.weight, out.bias = module.weight, module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():  # also moves a BatchNormAct's drop/act onto the replacement
        out.add_module(name, _convert_cpu(child))
    return out


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm in `module` (in place where possible) by a synchronized one for `device`."""
    if torch.device(device).type == "cuda":
        from timm.layers import convert_sync_batchnorm as timm_convert

        return timm_convert(module)
    return _convert_cpu(module)
