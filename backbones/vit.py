"""timm Vision Transformers as ssl-bench backbones: pooled features, final-normed tokens, and masked forwards.

Any timm `VisionTransformer` (vit_*, deit_*, their subclasses) built through the `timm` adapter gets the methods
below mixed into its own class (`with_token_api`), so that its state_dict keys stay timm's own: the published
ViT checkpoints of MAE, DINO, MoCo v3 and I-JEPA load with a key map (ssl_bench/checkpoint_formats.py), and
timm's other methods keep working. The API methods and evaluations build on:

  forward(x) -> (B, D)                    pool(forward_tokens(x)): what timm's forward gives with num_classes=0
  forward_tokens(x, keep=None)            (B, num_prefix_tokens + n, D) tokens after the last block and the
                                          final norm; with `keep` (B, n_keep) patch indices, only those patches
                                          (plus the prefix tokens) pass through the blocks (MAE, I-JEPA)
  pool(tokens) -> (B, D)                  global_pool 'token' (the class token, timm's default) or 'avg'
                                          (mean of the patch tokens), then timm's fc_norm and head dropout
  patch_size (int), grid_size (h, w), num_patches, num_prefix_tokens, embed_dim, num_features

Masking follows MAE's encoder (facebookresearch/mae models_mae.py, forward_encoder): patches are embedded, the
position embedding is added to every patch, then the kept patches are gathered, so each kept patch carries
its own position. The class token gets its position embedding as in timm (`_pos_embed`).
"""
from __future__ import annotations

from typing import Any

import torch
from timm.models import VisionTransformer
from timm.models._manipulate import checkpoint_seq
from torch import nn

from ssl_bench.errors import UserError

POOLS = ("token", "avg")  # timm's names: the class token, or the mean of the patch tokens


class TokenViT:
    """Mixed into a timm VisionTransformer's class (see module docstring); adds no parameters."""

    @property
    def patch_size(self) -> int:
        return int(self.patch_embed.patch_size[0])

    @property
    def grid_size(self) -> tuple[int, int]:
        h, w = self.patch_embed.grid_size
        return int(h), int(w)

    @property
    def num_patches(self) -> int:
        return int(self.patch_embed.num_patches)

    def forward_tokens(self, x: torch.Tensor, keep: torch.LongTensor | None = None) -> torch.Tensor:
        """Final-normed tokens (B, num_prefix_tokens + n, D): every patch, or those `keep` (B, n_keep) names."""
        x = self._pos_embed(self.patch_embed(x))  # prefix tokens + position embedding, timm's variant rules
        if keep is not None:
            x = keep_patches(x, keep, self.num_prefix_tokens)
        x = self.norm_pre(self.patch_drop(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return self.norm(x)

    def pool(self, tokens: torch.Tensor, pool_type: str | None = None) -> torch.Tensor:
        """(B, D) features from forward_tokens' output: timm's pooling, then its fc_norm and head dropout."""
        x = super().pool(tokens, pool_type)  # timm's VisionTransformer.pool: token / avg over patch tokens
        return self.head_drop(self.fc_norm(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x)  # pool() already applies fc_norm: timm's forward_head would apply it twice
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_tokens(x))


def keep_patches(tokens: torch.Tensor, keep: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """The prefix tokens followed by the patch tokens listed in `keep` (B, n_keep), in that order."""
    if keep.dim() != 2 or keep.shape[0] != tokens.shape[0] or keep.dtype != torch.long:
        raise ValueError(f"keep: expected a (B={tokens.shape[0]}, n_keep) LongTensor of patch indices, got "
                         f"{tuple(keep.shape)} {keep.dtype}")
    prefix, patches = tokens[:, :num_prefix], tokens[:, num_prefix:]
    kept = torch.gather(patches, 1, keep.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
    return torch.cat([prefix, kept], dim=1)


_CLASSES: dict[type, type] = {}


def with_token_api(net: VisionTransformer, model: str) -> VisionTransformer:
    """`net` with TokenViT's methods (its class becomes a subclass of its own; parameters and keys unchanged)."""
    ph, pw = net.patch_embed.patch_size
    if ph != pw:
        raise UserError(f"timm model '{model}': patch_size {(ph, pw)} is not square; allowed: square patches")
    pool = net.global_pool
    if pool not in POOLS or net.attn_pool is not None:
        raise UserError(f"timm model '{model}': global_pool {pool!r}; allowed: {' or '.join(POOLS)} "
                        "(kwargs.global_pool)")
    base = type(net)
    if not isinstance(net, TokenViT):
        if base not in _CLASSES:
            _CLASSES[base] = type(base.__name__, (TokenViT, base), {"__module__": __name__})
        net.__class__ = _CLASSES[base]
    return net


def is_vit(net: nn.Module) -> bool:
    return isinstance(net, TokenViT)


def vit_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """timm puts the final norm after pooling (fc_norm) when global_pool is 'avg'; ssl-bench keeps it on the
    tokens unless `fc_norm` is given, as MAE / I-JEPA / DINO encoders do (their checkpoints have `norm.*`, no
    `fc_norm.*`), so that forward_tokens returns normed tokens for every pooling."""
    if kwargs.get("global_pool") == "avg" and "fc_norm" not in kwargs:
        return {**kwargs, "fc_norm": False}
    return kwargs


def freeze_patch_embed(backbone: nn.Module, where: str = "params.freeze_patch_embed") -> None:
    """MoCo v3's stop-gradient on the random patch projection [M3 Sec. 4.1; moco-v3 vits.py, stop_grad_conv1]:
    patch_embed's weights keep their initial values (the optimizer never sees them)."""
    if not is_vit(backbone):
        raise UserError(f"{where}: true needs a ViT backbone (a timm VisionTransformer), got "
                        f"{type(backbone).__name__}; allowed: false for this backbone")
    for p in backbone.patch_embed.parameters():
        p.requires_grad_(False)
