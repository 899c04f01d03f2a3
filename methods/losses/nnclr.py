"""NNCLR's pieces [NNCLR eq. 2, Sec. 3.2]: the nearest neighbour of each embedding in a support set of past
embeddings, InfoNCE with that neighbour as the positive, and the support set's FIFO update."""
from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def nearest_neighbour(z: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """NN(z, Q): for each row of z, the support-set row of highest cosine similarity (the support set holds
    l2-normalized embeddings, so this is also the Euclidean nearest neighbour of normalize(z)). No gradient."""
    return support[(F.normalize(z, dim=1) @ support.T).argmax(dim=1)]


def nnclr_loss(nn: torch.Tensor, p_all: torch.Tensor, temperature: float, rank: int = 0) -> torch.Tensor:
    """One direction of NNCLR's loss [NNCLR eq. 2]: -log softmax over k of NN(z_i) . p_k / t at k = i.

    nn: (N, d) this process's nearest neighbours of one view's projections (no gradient); p_all: (W * N, d) the
    other view's predictions gathered over processes with gradient (p itself on one process); this process's
    rows sit at rank * N. Cosine similarities (both sides l2-normalized). Mean over this process's anchors."""
    n = nn.shape[0]
    logits = F.normalize(nn.detach(), dim=1) @ F.normalize(p_all, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(n, device=nn.device) + n * rank)


@torch.no_grad()
def support_set_enqueue(queue: torch.Tensor, ptr: torch.Tensor, keys: torch.Tensor) -> None:
    """Write `keys` (the global batch's embeddings, l2-normalized) over the oldest rows of `queue`, in place,
    and advance the write pointer `ptr` (a 0-d long tensor), wrapping around; no host sync."""
    size, b = queue.shape[0], keys.shape[0]
    slots = (ptr + torch.arange(b, device=keys.device)) % size
    queue.index_copy_(0, slots, keys.to(queue.dtype))
    ptr.add_(b).remainder_(size)
