"""I-JEPA: Self-Supervised Learning from Images with a Joint-Embedding Predictive Architecture (Assran et al.,
arXiv 2301.08243).

Algorithm box:
  context encoder = ViT (trained)      target encoder = EMA of it (never trained)      predictor = narrow ViT
  for each batch of N images: one view x (random-resized crop 0.3-1, no flip, no colour)
      ctx, tgt = multiblock(N)   M = 4 target blocks (scale 0.15-0.2, aspect 0.75-1.5) and one context block
                                 (scale 0.85-1, square) minus every target patch; equal counts across the batch
      h    = layer_norm(target_encoder.forward_tokens(x))[tgt]     all patches seen, no gradient
      z    = context_encoder.forward_tokens(x, keep=ctx)            only the context patches
      y    = predictor(z, ctx, tgt)            one sequence per target block: context + mask tokens at tgt
      loss = smooth_l1(y, h)                   mean over images, blocks, patches and features
  after each optimizer step: target <- m * target + (1 - m) * context, m linear from 0.996 to 1
  evaluations probe the target encoder, average-pooled (there is no class token) [ijepa#36, ijepa#55, jepa#86]
  Nothing is gathered: the logged loss is averaged over processes (AllReduce in the official code), and
  the gradient is each process's, averaged by DDP.

Sources: [IJ] = facebookresearch/ijepa at 52c1ae9 (src/train.py, src/helper.py, src/masks/multiblock.py,
configs/in1k_vith14_ep300.yaml). Differences from it: the encoder is the suite's ViT (timm's learned position
embedding; the class token, if it has one, goes through the encoder and is dropped before the predictor and the
loss); the lr warms up from 0 (IJ: from start_lr 2e-4).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ssl_bench.errors import UserError
from ssl_bench.method import Method, set_requires_grad
from ssl_bench.presets import Preset
from ssl_bench.registry import register_method
from ssl_bench.validate import DIM, UNIT, OneOf, Range, fail

from ssl_bench.methods.losses import ijepa_loss, ijepa_targets
from ssl_bench.methods.masks import MaskClock, MultiBlock, block_size, multiblock_masks
from ssl_bench.methods.token_heads import JEPAPredictor, num_heads, require_vit

# [IJ configs/in1k_vith14_ep300.yaml `data:`, src/transforms.py]: RandomResizedCrop(scale 0.3-1, torchvision's
# bilinear default); flip, colour distortion and blur all off.
IJEPA_VIEW = {"crop_scale": [0.3, 1.0], "interpolation": "bilinear", "flip_p": 0.0, "jitter_p": 0.0,
              "grayscale_p": 0.0, "blur_p": 0.0, "solarize_p": 0.0}

# [IJ configs/in1k_vith14_ep300.yaml `optimization:`]: AdamW (torch's default betas, src/helper.py L142), peak
# lr 1e-3 at batch 2048 (128 per GPU x 16, the log folder's bs.2048) -> 1e-3 * 256 / 2048 per 256 images,
# cosine to final_lr 1e-6, 40 warmup epochs, wd cosine from 0.04 to 0.4 (src/utils/schedulers.py L48-76),
# biases and 1-d parameters without decay (src/helper.py L121-139; its position embedding is fixed, and there is
# no class token: ssl-bench's exclude_tokens keeps the suite ViT's learned ones undecayed too). No clipping.
IJEPA_OPTIM = {"optimizer": "adamw", "base_lr": 1e-3 * 256 / 2048, "weight_decay": 0.04, "weight_decay_end": 0.4,
               "min_lr": 1e-6, "betas": [0.9, 0.999], "warmup_epochs": 40, "exclude_bias_and_norm": True}


@dataclass(frozen=True)
class Interval:
    """A declared [lo, hi] pair with lo_min < lo <= hi <= hi_max (scales and aspect ratios)."""

    lo_min: float = 0.0
    hi_max: float | None = None

    def allowed(self, kind: str = "") -> str:
        top = f" <= {self.hi_max:g}" if self.hi_max is not None else ""
        return f"a list [lo, hi] with {self.lo_min:g} < lo <= hi{top}"

    def check(self, value: Any, field: str) -> list[float]:
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and x == x for x in value)
        if not ok or not self.lo_min < value[0] <= value[1] or (self.hi_max is not None and value[1] > self.hi_max):
            raise fail(field, value, self.allowed())
        return [float(value[0]), float(value[1])]


def check_blocks(spec: MultiBlock) -> None:
    """Every block this recipe can draw on this grid is non-empty, and the largest context has more than
    min_keep patches (the official sampler loops forever otherwise)."""
    for u in (0.0, 1.0):
        h, w = block_size(u, spec.grid, spec.target_scale, spec.target_aspect)
        if h < 1 or w < 1:
            raise UserError(f"methods: ijepa params.target_scale {list(spec.target_scale)} gives an empty target "
                            f"block on the {spec.grid[0]}x{spec.grid[1]} patch grid; allowed: a larger scale")
    h, w = block_size(1.0, spec.grid, spec.context_scale, (1.0, 1.0))
    if h * w <= spec.min_keep:
        raise UserError(f"methods: ijepa params.min_keep {spec.min_keep} needs contexts of more patches than the "
                        f"{h}x{w} block the {spec.grid[0]}x{spec.grid[1]} grid allows; allowed: min_keep < {h * w}")


@register_method("ijepa")
class IJEPA(Method):
    """I-JEPA: predict the target encoder's tokens of four blocks from one context block, in latent space."""

    defaults = {  # [IJ configs/in1k_vith14_ep300.yaml]
        "context_scale": [0.85, 1.0],  # mask.enc_mask_scale (num_enc_masks: 1)
        "target_scale": [0.15, 0.2],  # mask.pred_mask_scale
        "target_aspect": [0.75, 1.5],  # mask.aspect_ratio
        "num_targets": 4,  # mask.num_pred_masks
        "min_keep": 10,  # mask.min_keep: a context has more patches than this
        "pred_depth": 12,  # meta.pred_depth (ViT-H/14)
        "pred_dim": 384,  # meta.pred_emb_dim
        "pred_heads": None,  # None: the encoder's head count [IJ src/helper.py L79-84]
        "tau_base": 0.996,  # optimization.ema: linear from 0.996 to 1.0 over training [IJ src/train.py L228]
        "tau_final": 1.0,
        "eval_encoder": "target",  # the encoder evaluations probe: target | context
        "eval_pool": "avg",  # its pooled features: mean of the patch tokens [ijepa#36], or the class token
    }
    param_ranges = {"context_scale": Interval(0.0, 1.0), "target_scale": Interval(0.0, 1.0),
                    "target_aspect": Interval(0.0), "num_targets": DIM, "min_keep": Range(0), "pred_depth": DIM,
                    "pred_dim": DIM, "pred_heads": DIM, "tau_base": UNIT, "tau_final": UNIT,
                    "eval_encoder": OneOf(("target", "context")), "eval_pool": OneOf(("avg", "token"))}
    optim = IJEPA_OPTIM
    augmentation = {"views": [IJEPA_VIEW]}
    presets = {"ijepa-300ep": Preset(2048, "IJ configs/in1k_vith14_ep300.yaml", 300, {}, dict(IJEPA_OPTIM))}

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__(backbone, num_classes, **params)
        require_vit(backbone, "ijepa")
        hp = self.hparams
        self.spec = MultiBlock(tuple(int(g) for g in backbone.grid_size), tuple(hp["context_scale"]),
                               tuple(hp["target_scale"]), tuple(hp["target_aspect"]), hp["num_targets"],
                               hp["min_keep"])
        check_blocks(self.spec)
        heads = hp["pred_heads"] or num_heads(backbone)
        if hp["pred_dim"] % heads or hp["pred_dim"] % 4:
            raise UserError(f"methods: ijepa params.pred_dim {hp['pred_dim']} must be divisible by 4 (sin-cos "
                            f"position embedding) and by the predictor's {heads} heads")
        self.predictor = JEPAPredictor(self.spec.grid, backbone.embed_dim, hp["pred_dim"], hp["pred_depth"], heads)
        backbone.global_pool = hp["eval_pool"]  # timm's pool(): what forward() and the evaluations see
        self.target_backbone = copy.deepcopy(backbone)
        set_requires_grad(self.target_backbone, False)
        self.mask_clock = MaskClock()

    def training_step(self, views: list[torch.Tensor], labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        x, prefix = views[0], self.backbone.num_prefix_tokens
        context_idx, target_idx = (m.to(x.device) for m in multiblock_masks(x.shape[0], self.spec,
                                                                             self.mask_clock.generator()))
        with torch.no_grad():
            targets = ijepa_targets(self.target_backbone.forward_tokens(x)[:, prefix:], target_idx)
        context = self.backbone.forward_tokens(x, context_idx)[:, prefix:]
        pred = self.predictor(context, context_idx, target_idx)
        dtype = torch.promote_types(pred.dtype, torch.float32)
        return {"loss": ijepa_loss(pred.to(dtype), targets.to(dtype))}

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.target_backbone)]

    def momentum_at(self, step: int, total_steps: int) -> float:
        """m_k = base + k (final - base) / K [IJ src/train.py L228-229]."""
        base, final = self.hparams["tau_base"], self.hparams["tau_final"]
        return base + min(max(step, 0), total_steps) * (final - base) / max(total_steps, 1)

    def encoder(self) -> nn.Module:
        return self.target_backbone if self.hparams["eval_encoder"] == "target" else self.backbone
