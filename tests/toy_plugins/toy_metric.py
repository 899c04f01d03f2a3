"""A toy metric plugin: top-2 accuracy, computable, so a probe can select on it (tests/test_extension_points.py)."""
import torch

from ssl_bench import register_metric


@register_metric("toy_top2", label="Top-2", short="top-2", order=15)
def toy_top2(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """top-2 accuracy"""
    top = scores.topk(2, dim=1).indices
    return 100.0 * (top == labels.view(-1, 1)).any(dim=1).double().mean().item()
