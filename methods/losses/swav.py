"""SwAV's pieces [SwAV Sec. 3.1, facebookresearch/swav main_swav.py]: codes from prototype scores by
Sinkhorn-Knopp over the global batch, and the swapped prediction loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_bench.distributed import all_reduce_with_grad, world_size


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Codes Q (B x K, rows summing to 1) from prototype scores (B x K) [swav main_swav.py distributed_sinkhorn]:
    Q = exp(scores / eps)^T, scaled to sum 1, then `iterations` rounds of rows to 1/K (row sums over every
    process) and columns to 1/B (B = the global number of rows), finally columns to 1. Every sum that spans
    samples is all-reduced, so W processes give the codes one process would give for the whole global batch.
    Computed in float32 at least (exp(1 / 0.05) overflows float16)."""
    q = torch.exp(scores.to(torch.promote_types(scores.dtype, torch.float32)) / epsilon).T  # K x B
    k, b = q.shape[0], q.shape[1] * world_size()
    q = q / all_reduce_with_grad(q.sum())
    for _ in range(iterations):
        q = q / all_reduce_with_grad(q.sum(dim=1, keepdim=True)) / k  # each prototype's total weight 1/K
        q = q / q.sum(dim=0, keepdim=True) / b  # each sample's total weight 1/B
    return (q * b).T


def swav_loss(scores: list[torch.Tensor], codes: list[torch.Tensor], assign_ids: list[int],
              temperature: float) -> torch.Tensor:
    """Swapped prediction [SwAV eq. 1-3]: for each view i whose codes were computed (assign_ids), the mean over
    every other view v of the cross-entropy between q_i and softmax(scores_v / t), batch means; the mean over
    the assigned views. scores: per view (B x K) z . c; codes: per assigned view (B x K), no gradient."""
    loss = scores[0].new_zeros(())
    for q, i in zip(codes, assign_ids):
        others = [v for v in range(len(scores)) if v != i]
        sub = sum(-(q.detach() * F.log_softmax(scores[v] / temperature, dim=1)).sum(dim=1).mean() for v in others)
        loss = loss + sub / len(others)
    return loss / len(codes)
