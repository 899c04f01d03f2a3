"""Label-free quality metrics of frozen features, computed in float64.

- RankMe (Garrido et al. 2023, "RankMe: Assessing the downstream performance of pretrained self-supervised
  representations by their rank", Eq. 1): the singular values s_k of the N x D feature matrix, p_k = s_k / sum(s)
  + eps (eps 1e-7), RankMe = exp(-sum p_k log p_k), a smooth rank between 1 and min(N, D).
- LiDAR (Thilak et al. 2024, "LiDAR: Sensing linear probing performance in joint embedding SSL architectures",
  Sec. 3): each of n images is a class whose q augmented views are its samples; between-class covariance
  S_b = 1/(n-1) sum_i (mu_i - mu)(mu_i - mu)^T, within-class S_w = 1/(n(q-1)) sum_ij (e_ij - mu_i)(e_ij - mu_i)^T
  + delta I (delta 1e-4); LiDAR is the same smooth rank of the eigenvalues of S_w^-1/2 S_b S_w^-1/2.
- alpha-ReQ (Agrawal et al. 2022, "alpha-ReQ: Assessing representation quality in self-supervised learning by
  measuring eigenspectrum decay"): the eigenvalues lambda_1 >= lambda_2 >= ... of the feature covariance follow
  lambda_k ~ k^-alpha; alpha is minus the least-squares slope of log lambda_k against log k, over the ranks whose
  eigenvalue is above `rel_floor` times the largest (numerically zero ones say nothing of the decay).
"""
from __future__ import annotations

import math

import torch

EPS = 1e-7  # RankMe's epsilon [Garrido et al. 2023]
DELTA = 1e-4  # LiDAR's ridge on the within-class covariance [Thilak et al. 2024]
REL_FLOOR = 1e-12  # alpha-ReQ: eigenvalues below this share of the largest are float noise


def smooth_rank(values: torch.Tensor, eps: float = EPS) -> float:
    """exp of the entropy of p = values / sum(values) + eps (non-negative values; all zero gives 1)."""
    v = values.double().clamp(min=0)
    total = v.sum()
    if total <= 0:
        return 1.0
    p = v / total + eps
    return float(torch.exp(-(p * p.log()).sum()))


def rankme(features: torch.Tensor, eps: float = EPS) -> float:
    """RankMe of N x D features (uncentred, as the paper)."""
    if features.dim() != 2 or min(features.shape) == 0:
        raise ValueError(f"rankme: expected N x D features with N, D >= 1, got shape {tuple(features.shape)}")
    return smooth_rank(torch.linalg.svdvals(features.double()), eps)


def lidar(views: torch.Tensor, delta: float = DELTA, eps: float = EPS) -> float:
    """LiDAR of q x n x D features: view j of image i at [j, i] (q >= 2 views, n >= 2 images)."""
    if views.dim() != 3 or views.shape[0] < 2 or views.shape[1] < 2:
        raise ValueError(f"lidar: expected q x n x D features with q >= 2 views of n >= 2 images, got shape "
                         f"{tuple(views.shape)}")
    e = views.double()
    q, n, d = e.shape
    mu_i = e.mean(0)  # n x D, each image's mean over its views
    between = mu_i - mu_i.mean(0)
    s_b = between.T @ between / (n - 1)
    within = (e - mu_i).reshape(q * n, d)
    s_w = within.T @ within / (n * (q - 1)) + delta * torch.eye(d, dtype=e.dtype)
    w_val, w_vec = torch.linalg.eigh(s_w)
    inv_sqrt = (w_vec * w_val.rsqrt()) @ w_vec.T
    lda = inv_sqrt @ s_b @ inv_sqrt
    return smooth_rank(torch.linalg.eigvalsh((lda + lda.T) / 2), eps)


def alpha_req(features: torch.Tensor, rel_floor: float = REL_FLOOR) -> float:
    """alpha of the power law fitted to the covariance eigenspectrum of N x D features (needs 2 ranks)."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"alpha_req: expected N x D features with N >= 2, got shape {tuple(features.shape)}")
    x = features.double()
    x = x - x.mean(0)
    lam = torch.linalg.eigvalsh(x.T @ x / (len(x) - 1)).flip(0)
    lam = lam[lam > rel_floor * lam[0].clamp(min=0)] if lam[0] > 0 else lam[:0]
    if len(lam) < 2:
        return math.nan  # one direction (or none): no decay to fit
    log_k = torch.arange(1, len(lam) + 1, dtype=torch.float64).log()
    log_l = lam.log()
    lk, ll = log_k - log_k.mean(), log_l - log_l.mean()
    return float(-(lk * ll).sum() / (lk * lk).sum())
