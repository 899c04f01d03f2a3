"""MAE: Masked Autoencoders Are Scalable Vision Learners (He et al., arXiv 2111.06377).

Algorithm box:
  encoder = ViT (the network evaluations probe)        decoder = 8 blocks, 512 wide, 16 heads (pretraining only)
  for each batch of N images: one view x (random-resized crop 0.2-1, flip)
      keep, masked = random_masking(N, L, ratio 0.75)  per image: argsort of uniform noise, first L/4 kept
      z    = encoder.forward_tokens(x, keep)           position embedding added, then only the kept patches
      y    = decoder(z, keep)                          mask tokens at the removed positions, own 2D sin-cos
                                                       position embedding -> (N, L, p * p * C) pixels
      t    = patchify(x), normalised per patch          norm_pix_loss: (t - mean) / sqrt(var + 1e-6)
      loss = sum(masked * mean_k (y - t)^2) / sum(masked)   removed patches only
  Nothing is gathered across processes: the loss is each process's mean, DDP averages the gradients.

Sources: [MAE] = facebookresearch/mae at efb2a80 (models_mae.py, main_pretrain.py, PRETRAIN.md). Differences from
it: the encoder is the suite's ViT (timm's learned position embedding and its init; MAE's encoder has a fixed
sin-cos embedding and Xavier init, models_mae.py L37, L65-93), and the lr follows the engine's per-step warmup and
cosine (MAE: per-iteration half-cycle cosine to min_lr 0, util/lr_sched.py, the same shape).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ssl_bench.method import Method
from ssl_bench.presets import by_epochs
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM, OneOf, Range

from ssl_bench.methods.losses import mae_loss, patchify
from ssl_bench.methods.masks import MaskClock, mae_random_masking
from ssl_bench.methods.token_heads import MAEDecoder, in_chans, require_vit

# [MAE main_pretrain.py L122-127]: RandomResizedCrop(scale 0.2-1, bicubic) + horizontal flip, nothing else.
MAE_VIEW = {"crop_scale": [0.2, 1.0], "interpolation": "bicubic", "flip_p": 0.5, "jitter_p": 0.0,
            "grayscale_p": 0.0, "blur_p": 0.0, "solarize_p": 0.0}

# [MAE PRETRAIN.md]: AdamW, blr 1.5e-4 (lr = blr * 4096 / 256), wd 0.05, 40 warmup epochs, batch 4096;
# betas (0.9, 0.95) [main_pretrain.py L180]; no decay for biases and norms (timm add_weight_decay, L179, which
# decays the class and mask tokens; ssl-bench's exclude_tokens spares the ViT's class token and learned position
# embedding, MAE's is fixed). Cosine to min_lr 0 [util/lr_sched.py]; no gradient clipping [engine_pretrain.py].
MAE_OPTIM = {"optimizer": "adamw", "base_lr": 1.5e-4, "weight_decay": 0.05, "betas": [0.9, 0.95],
             "warmup_epochs": 40, "exclude_bias_and_norm": True, "min_lr": 0.0}


def patch_side(backbone: nn.Module) -> int:
    p = backbone.patch_size
    p = (p, p) if isinstance(p, int) else tuple(p)
    if p[0] != p[1]:
        raise ValueError(f"MAE's patchify needs square patches, not {p}")
    return int(p[0])


@register_method("mae")
class MAE(Method):
    """MAE: reconstruct the normalised pixels of 75% removed patches from the 25% the encoder sees."""

    defaults = {
        "mask_ratio": 0.75,  # [MAE main_pretrain.py L53, PRETRAIN.md]
        "norm_pix_loss": True,  # PRETRAIN.md passes --norm_pix_loss (the code's flag default is off, L56-58)
        "decoder_dim": 512,  # mae_vit_*_dec512d8b [MAE models_mae.py L223-244]
        "decoder_depth": 8,
        "decoder_heads": 16,
        # the pooled feature evaluations see: "token" (the class token, main_linprobe.py's default, global_pool off)
        # or "avg" (the mean patch token, main_finetune.py's default; the paper's App. A.1 reports that MAE does
        # about as well with average pooling); None keeps the backbone's own `global_pool` (timm's default: token)
        "eval_pool": None,
    }
    param_ranges = {"mask_ratio": Range(0, 1, lo_open=True, hi_open=True), "decoder_dim": DIM,
                    "decoder_depth": DIM, "decoder_heads": DIM, "eval_pool": OneOf(("token", "avg"))}
    optim = MAE_OPTIM
    augmentation = {"views": [MAE_VIEW]}
    # [MAE PRETRAIN.md]: ViT-L 800 epochs at batch 4096 (the paper's Table 1 also trains 1600 with the same recipe)
    presets = by_epochs("mae", "MAE PRETRAIN.md + main_pretrain.py", 4096, {
        800: ({}, dict(MAE_OPTIM)), 1600: ({}, dict(MAE_OPTIM))})

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__(backbone, num_classes, **params)
        require_vit(backbone, "mae")
        hp = self.hparams
        if hp["decoder_dim"] % hp["decoder_heads"] or hp["decoder_dim"] % 4:
            from ssl_bench.errors import UserError

            raise UserError(f"methods: mae params.decoder_dim {hp['decoder_dim']} must be divisible by 4 (sin-cos "
                            f"position embedding) and by decoder_heads {hp['decoder_heads']}")
        self.patch = patch_side(backbone)
        grid = tuple(int(g) for g in backbone.grid_size)
        self.decoder = MAEDecoder(grid, backbone.embed_dim, hp["decoder_dim"], hp["decoder_depth"],
                                  hp["decoder_heads"], self.patch ** 2 * in_chans(backbone),
                                  backbone.num_prefix_tokens)
        if hp["eval_pool"] is not None:  # a stated choice wins over the backbone's kwargs, else they stand
            backbone.global_pool = hp["eval_pool"]  # timm's pool(): what forward() and the evaluations see
        self.mask_clock = MaskClock()

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        x = views[0]
        keep, masked = mae_random_masking(x.shape[0], self.backbone.num_patches, self.hparams["mask_ratio"],
                                          self.mask_clock.generator(x.device))
        pred = self.decoder(self.backbone.forward_tokens(x, keep), keep)
        dtype = torch.promote_types(pred.dtype, torch.float32)  # the loss in fp32 (or fp64) under autocast
        loss = mae_loss(pred.to(dtype), patchify(x.to(dtype), self.patch), masked, self.hparams["norm_pix_loss"])
        return {"loss": loss}
