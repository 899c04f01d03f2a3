"""The attentive probe's head and its training on cached tokens.

Design: V-JEPA's AttentiveClassifier (facebookresearch/jepa, src/models/attentive_pooler.py, AttentivePooler
with one CrossAttentionBlock, and src/models/utils/modules.py): a learnable query token (trunc-normal, std 0.02)
attends to the layer-normed frozen tokens (q from the query, k and v from the tokens, multi-head scaled
dot-product attention, an output projection); the query is updated residually, then by a residual MLP
(ratio 4, GELU) on its layer norm; a linear classifier reads the pooled query. Linear layers start
trunc-normal(0.02) with zero bias, and the block's two output projections are divided by sqrt(2 * depth),
depth 1, as V-JEPA's `_rescale_blocks`. Heads for several learning rates train together on the same batches
(AdamW, per-step cosine decay), as linear_sgd trains one linear head per lr.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.engine.schedules import warmup_cosine
from ssl_bench.evalkit.finetune import _loss

INIT_STD = 0.02


def default_heads(dim: int) -> int:
    """Heads of 64 dimensions, as ViT-Ti/S/B (3/6/12 heads at 192/384/768), at least one, dividing `dim`."""
    h = max(1, dim // 64)
    while dim % h:
        h -= 1
    return h


class AttentivePooler(nn.Module):
    """(B, N, C) tokens -> (B, C): one learnable query, a cross-attention block with its MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"token width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, c = tokens.shape
        h = self.num_heads
        x = self.norm1(tokens)
        q = self.q(self.query.expand(b, -1, -1)).view(b, 1, h, c // h).transpose(1, 2)  # B, h, 1, c/h
        k, v = self.kv(x).view(b, n, 2, h, c // h).permute(2, 0, 3, 1, 4)  # each B, h, N, c/h
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, 1, c)
        z = self.query + self.proj(y)
        z = z + self.mlp(self.norm2(z))
        return z[:, 0]


class AttentiveClassifier(nn.Module):
    """AttentivePooler then a linear layer: logits (B, num_classes)."""

    def __init__(self, dim: int, num_classes: int, num_heads: int, seed: int = 0):
        super().__init__()
        self.pooler = AttentivePooler(dim, num_heads)
        self.linear = nn.Linear(dim, num_classes)
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            self.pooler.query.copy_(_trunc_normal(self.pooler.query.shape, gen))
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    m.weight.copy_(_trunc_normal(m.weight.shape, gen))
                    m.bias.zero_()
            for w in (self.pooler.proj.weight, self.pooler.mlp[2].weight):  # _rescale_blocks, layer 1
                w.div_(math.sqrt(2.0))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pooler(tokens))


def _trunc_normal(shape: Sequence[int], gen: torch.Generator) -> torch.Tensor:
    """N(0, INIT_STD) truncated to [-2 std, 2 std] (timm's trunc_normal_ with a = -2 std, b = 2 std)."""
    x = torch.empty(shape)
    return torch.nn.init.trunc_normal_(x, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD, generator=gen)


def train_heads(heads: Sequence[AttentiveClassifier], tokens: torch.Tensor, labels: torch.Tensor, *,
                lrs: Sequence[float], epochs: int, batch_size: int, weight_decay: float, seed: int,
                device: torch.device, on_epoch: Callable[[], None] | None = None) -> None:
    """AdamW (one param group per head and lr), per-step cosine decay, the same shuffled batches for all heads."""
    groups = [{"params": list(h.parameters()), "lr": lr, "base_lr": lr} for h, lr in zip(heads, lrs)]
    opt = torch.optim.AdamW(groups, lr=lrs[0], weight_decay=weight_decay)
    n = len(tokens)
    drop_last = n > batch_size
    per_epoch = n // batch_size if drop_last else 1
    total = max(epochs * per_epoch, 1)
    gen = torch.Generator().manual_seed(int(seed))
    for h in heads:
        h.to(device).train()
    step = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size] if drop_last else order
            x = tokens[idx].to(device, torch.float32)
            y = labels[idx].to(device)
            for g in opt.param_groups:
                g["lr"] = warmup_cosine(step, total, 0, g["base_lr"])
            loss = _loss(torch.stack([h(x) for h in heads]), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        if on_epoch is not None:
            on_epoch()
    for h in heads:
        h.eval()


@torch.no_grad()
def predict_heads(heads: Sequence[AttentiveClassifier], tokens: torch.Tensor, device: torch.device,
                  batch_size: int = 256) -> torch.Tensor:
    """Scores (heads, N, classes) on the CPU."""
    out = []
    for i in range(0, len(tokens), batch_size):
        x = tokens[i:i + batch_size].to(device, torch.float32)
        out.append(torch.stack([h(x) for h in heads]).float().cpu())
    return torch.cat(out, dim=1)
