"""The small transformers the masked-image methods put behind a ViT encoder: MAE's decoder and I-JEPA's predictor.

Both add a fixed 2D sin-cos position embedding of the patch grid to their inputs and fill the positions they
must predict with one learned mask token [MAE models_mae.py L47-58, L172-196; IJ src/models/vision_transformer.py
L220-326]. Their blocks are timm's pre-norm ViT blocks (qkv bias, MLP ratio 4, LayerNorm eps 1e-6).
"""
from __future__ import annotations

import math
from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

LayerNorm = partial(nn.LayerNorm, eps=1e-6)


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(M, dim): [sin(p w_k), cos(p w_k)] with w_k = 10000^(-2k / dim), k < dim / 2 [MAE util/pos_embed.py]."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.double().reshape(-1, 1) * omega
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(dim: int, grid: tuple[int, int]) -> torch.Tensor:
    """(H * W, dim) in raster order: the first half encodes the column, the second the row [MAE
    util/pos_embed.py L20-46: meshgrid(w, h) puts w first]."""
    if dim % 4:
        raise ValueError(f"a 2D sin-cos position embedding needs a width divisible by 4, not {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    return torch.cat([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], dim=1).float()


def blocks(dim: int, depth: int, heads: int) -> nn.ModuleList:
    return nn.ModuleList(Block(dim, heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=LayerNorm) for _ in range(depth))


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b, i]] for (B, N, D) x and (B, n) index."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class MAEDecoder(nn.Module):
    """Kept encoder tokens -> pixels of every patch: embed, put mask tokens at the removed positions, add the
    decoder's own position embedding (zero for prefix tokens), blocks, norm, linear to p * p * C."""

    def __init__(self, grid: tuple[int, int], embed_dim: int, dim: int, depth: int, heads: int, patch_dim: int,
                 num_prefix: int):
        super().__init__()
        self.grid, self.num_prefix = grid, num_prefix
        self.embed = nn.Linear(embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos_embed", sincos_2d(dim, grid).unsqueeze(0))
        self.blocks = blocks(dim, depth, heads)
        self.norm = LayerNorm(dim)
        self.pred = nn.Linear(dim, patch_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        """Xavier-uniform linears, zero biases, unit LayerNorms, mask token N(0, 0.02) [MAE models_mae.py L78-93]."""
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """tokens (B, P + n_keep, D) from forward_tokens(x, keep); keep (B, n_keep) -> (B, N, patch_dim)."""
        x = self.embed(tokens)
        prefix, kept = x[:, :self.num_prefix], x[:, self.num_prefix:]
        batch, n = x.shape[0], self.pos_embed.shape[1]
        full = self.mask_token.to(x.dtype).expand(batch, n, -1)
        full = full.scatter(1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]), kept)  # back to raster order
        x = torch.cat([prefix, full + self.pos_embed.to(x.dtype)], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.pred(self.norm(x))[:, self.num_prefix:]


class JEPAPredictor(nn.Module):
    """Context tokens + target positions -> predicted target-encoder tokens [IJ vision_transformer.py L285-326]:
    embed the context and add its positions, append one mask token per target position (plus that position),
    run each target block as its own sequence, norm, project back to the encoder width."""

    def __init__(self, grid: tuple[int, int], embed_dim: int, dim: int, depth: int, heads: int):
        super().__init__()
        self.embed = nn.Linear(embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos_embed", sincos_2d(dim, grid).unsqueeze(0))
        self.blocks = blocks(dim, depth, heads)
        self.norm = LayerNorm(dim)
        self.proj = nn.Linear(dim, embed_dim)
        self._init_weights()

    def _init_weights(self, std: float = 0.02) -> None:
        """Truncated-normal(0.02) linears and mask token, zero biases, unit LayerNorms, and each block's output
        projections divided by sqrt(2 * layer) [IJ vision_transformer.py L259-283]."""
        nn.init.trunc_normal_(self.mask_token, std=std)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            for layer, blk in enumerate(self.blocks, start=1):
                blk.attn.proj.weight.div_(math.sqrt(2.0 * layer))
                blk.mlp.fc2.weight.div_(math.sqrt(2.0 * layer))

    def forward(self, context: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor) -> torch.Tensor:
        """context (B, n_ctx, D) patch tokens at context_idx (B, n_ctx); target_idx (B, M, n_t)
        -> (B, M, n_t, D) predictions."""
        batch, num_targets, n_t = target_idx.shape
        pos = self.pos_embed.to(context.dtype).expand(batch, -1, -1)
        x = self.embed(context) + gather_tokens(pos, context_idx)
        queries = self.mask_token.to(x.dtype) + gather_tokens(pos, target_idx.reshape(batch, -1))
        queries = queries.reshape(batch * num_targets, n_t, -1)  # one sequence per (image, target block)
        x = torch.cat([x.repeat_interleave(num_targets, dim=0), queries], dim=1)
        for blk in self.blocks:
            x = blk(x)
        out = self.proj(self.norm(x[:, -n_t:]))
        return out.reshape(batch, num_targets, n_t, -1)


VIT_API = ("forward_tokens", "patch_size", "grid_size", "num_patches", "num_prefix_tokens", "embed_dim")


def require_vit(backbone: nn.Module, method: str) -> None:
    """A masked-image method needs a ViT backbone's token interface (backbones/vit.py)."""
    from ssl_bench.errors import UserError

    missing = [a for a in VIT_API if not hasattr(backbone, a)]
    if missing:
        raise UserError(f"methods: {method} needs a ViT backbone (patch tokens and masking), and "
                        f"{type(backbone).__name__} lacks {', '.join(missing)}; allowed: a ViT backbone, e.g. "
                        "vit_tiny_patch16_224")


def num_heads(backbone: nn.Module) -> int:
    """The encoder's attention heads (I-JEPA's predictor uses as many [IJ src/helper.py L79-84])."""
    heads = getattr(backbone, "num_heads", None)
    if heads is None:
        heads = next(m.num_heads for m in backbone.modules() if hasattr(m, "num_heads") and m is not backbone)
    return int(heads)


def in_chans(backbone: nn.Module) -> int:
    """Image channels the patch embedding reads (MAE's decoder predicts p * p * C values per patch)."""
    chans = getattr(backbone, "in_chans", None)
    if chans is None:
        chans = next(m.in_channels for m in backbone.modules() if isinstance(m, nn.Conv2d))
    return int(chans)
