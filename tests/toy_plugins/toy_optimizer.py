"""A toy optimizer plugin: sign SGD, p <- p - lr * sign(grad) (weight decay left to the recipe's groups)."""
import torch

from ssl_bench import register_optimizer


class SignSGD(torch.optim.Optimizer):
    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr, "weight_decay": 0.0})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])


@register_optimizer("toy_sign_sgd")
def toy_sign_sgd(groups, lr, recipe):
    """sign SGD: p <- p - lr * sign(grad)"""
    return SignSGD(groups, lr)
