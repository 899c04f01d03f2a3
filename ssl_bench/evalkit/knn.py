"""Weighted k-nearest-neighbour classification on features (InstDisc, Wu et al. 2018), as pure functions.

Shared by the `knn` evaluation and the engine's kNN monitor (plugins import the core, never each other).
Features are l2-normalized; each query takes its k most cosine-similar bank points and every neighbour votes
for its class with weight exp(similarity / T).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.07,
    chunk: int = 256,
) -> torch.Tensor:
    """Class scores N_test x C: per class, the sum of exp(s / T) over the top-k neighbours of that class.

    `train_labels` is int N (single label) or float N x C (multi-label: a neighbour votes for each of
    its positive classes). Each row of scores is scaled by exp(-s_max / T), s_max the row's best
    similarity, so small T cannot overflow; ranking within a row is unchanged.
    k is clamped to the bank size. Memory is chunk x N_train similarities at a time.
    """
    if len(train_feats) == 0:
        raise ValueError("knn_predict: empty memory bank")
    k = min(k, len(train_feats))
    bank = F.normalize(train_feats.float(), dim=1)
    test = F.normalize(test_feats.float().to(bank.device), dim=1)
    labels = train_labels.to(bank.device)
    multilabel = labels.dim() == 2
    out = torch.empty(len(test), num_classes, device=bank.device)
    for start in range(0, len(test), chunk):
        sims, idx = (test[start:start + chunk] @ bank.T).topk(k, dim=1)
        weights = ((sims - sims[:, :1]) / temperature).exp()  # topk is sorted: column 0 is the max
        if multilabel:
            scores = torch.einsum("nk,nkc->nc", weights, labels[idx].float())
        else:
            scores = torch.zeros(len(idx), num_classes, device=bank.device)
            scores.scatter_add_(1, labels[idx], weights)
        out[start:start + chunk] = scores
    return out
