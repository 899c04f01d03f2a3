"""Layer-wise learning-rate decay for ViT fine-tuning (BEiT; MAE util/lr_decay.py, param_groups_lrd).

With L blocks there are L + 2 layer ids: 0 for the patch embedding, position embedding and class token, i + 1 for
block i, L + 1 for everything above the blocks (final norm, heads). Layer id k gets lr scale
layer_decay ** (L + 1 - k): the top gets the full lr, each block below it layer_decay times its upper
neighbour's [MAE lr_decay.py: num_layers = len(blocks) + 1, layer_scales = decay ** (num_layers - i)].
Register and distillation tokens (timm variants MAE does not have) go with the class token, at layer 0.
"""
from __future__ import annotations

from torch import nn

from ssl_bench.errors import UserError

EMBEDDING_NAMES = ("cls_token", "pos_embed", "reg_token", "dist_token")


def layer_id(name: str, num_blocks: int) -> int:
    """The layer of a ViT parameter, by its name inside the ViT [MAE lr_decay.py, get_layer_id_for_vit]."""
    if name in EMBEDDING_NAMES or name.startswith("patch_embed"):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return num_blocks + 1


def layer_scales(model: nn.Module, layer_decay: float) -> dict[str, tuple[int, float]]:
    """{full parameter name: (layer id, lr scale)} for every parameter of `model`; parameters outside its ViT
    (a method's heads) are above the blocks, at scale 1. `model` is a ViT backbone or holds one."""
    from ssl_bench.backbones.vit import is_vit

    vits = [(prefix, m) for prefix, m in model.named_modules() if is_vit(m)]
    trained = [(prefix, m) for prefix, m in vits if any(p.requires_grad for p in m.parameters())]
    if not trained:
        raise UserError(f"optim.layer_decay: bad value {layer_decay}; allowed: 1.0 (off) for a backbone "
                        "without ViT blocks (layer-wise decay needs a timm VisionTransformer)")
    prefix, vit = trained[0]  # the online encoder (a momentum copy has no trainable parameters)
    top = len(vit.blocks) + 1
    out: dict[str, tuple[int, float]] = {}
    for name, _ in model.named_parameters():
        inside = name.startswith(f"{prefix}.") if prefix else True
        layer = layer_id(name[len(prefix) + 1:] if prefix else name, len(vit.blocks)) if inside else top
        out[name] = (layer, layer_decay ** (top - layer))
    return out
