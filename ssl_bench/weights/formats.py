"""Key layouts of published checkpoints, mapped onto a timm backbone's keys (ResNets, and ViTs: ViT releases
use timm's names, cls_token, pos_embed, patch_embed.proj, blocks.i.*, norm).

Each format takes the loaded checkpoint object and returns (encoder state dict, ignored keys). Supported
layouts, and where they come from:
- ssl_bench    our final.pt: {"model": method.state_dict(), ...}; the encoder is `backbone.*`.
- torchvision  a plain ResNet state dict (conv1, bn1, layer1-4, fc), also under "state_dict"; `fc.*` dropped.
               timm ResNets use the same names, so `timm` is the same layout. The converted releases use it
               too: SimCLR v1 by tonylins/simclr-converter ({"state_dict": torchvision keys}) and BYOL by
               ajtejankar/byol-convert (plain torchvision keys, no num_batches_tracked).
- moco_v2      facebookresearch/moco main_moco.py: {"state_dict": {"module.encoder_q.*"}}; the MLP head
               `encoder_q.fc.*`, `encoder_k.*` and the queue are ignored.
- moco_v3      facebookresearch/moco-v3: {"state_dict": {"module.base_encoder.*"}}; the projector
               `base_encoder.fc.*` (ResNet) or `base_encoder.head.*` (ViT, vit-s-300ep.pth.tar: builder.py
               MoCo_ViT replaces the head), `momentum_encoder.*` and `predictor.*` are ignored. Its
               convert_to_deit.py output ({"model": plain ViT keys}) reads as `mae`.
- mae          facebookresearch/mae: {"model": ViT keys} (mae_pretrain_vit_base.pth: the encoder only, as
               main_finetune.py loads it); a training checkpoint's decoder (`decoder_*`) and `mask_token`
               are ignored (models_mae.py MaskedAutoencoderViT).
- dino         facebookresearch/dino: the backbone-only release (dino_deitsmall16_pretrain.pth: plain ViT keys,
               DINO's head is not in it), or a full checkpoint {"teacher": {"backbone.*", "head.*"}, "student":
               {"module.backbone.*"}}: the teacher, as utils.load_pretrained_weights takes by default
               (eval_knn.py --checkpoint_key teacher), `module.` and `backbone.` removed, `head.*` ignored.
- ijepa        facebookresearch/ijepa (IN1K-vit.h.14-300e.pth.tar): {"encoder", "predictor", "target_encoder":
               {"module.*"}} (train.py save_dict; DDP's `module.` removed): `ijepa` loads the target encoder,
               the EMA encoder the paper evaluates, `ijepa_context` the context encoder. No class token: load
               it into a ViT built with class_token: false and global_pool: avg (pos_embed has no prefix row).
- solo_learn   a solo-learn Lightning checkpoint: {"state_dict": {"backbone.*"}}; projector, predictor,
               momentum backbone and classifier ignored.
- lightly      a lightly model saved whole: `backbone.*`, either named like timm/torchvision or, as in
               lightly's examples, `nn.Sequential(*resnet.children()[:-1])` indices (0 conv1, 1 bn1,
               4-7 layer1-4).
Not supported yet: SimCLR v2 converted by Separius/SimCLRv2-Pytorch (its own module names).
"""
from __future__ import annotations

import re
from typing import Any, Callable

import torch

Converter = Callable[[dict[str, Any]], tuple[dict[str, torch.Tensor], list[str]]]
HEAD_PREFIXES = ("fc.", "head.", "classifier.")
MAE_TRAINING_ONLY = ("decoder_", "mask_token")  # models_mae.py: the decoder and the encoder's mask token
LIGHTLY_INDEX = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}


def _tensors(d: Any) -> dict[str, torch.Tensor]:
    return {k: v for k, v in d.items() if isinstance(k, str) and isinstance(v, torch.Tensor)} \
        if isinstance(d, dict) else {}


def _inner(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensor dict inside the usual wrappers ({"state_dict": ...}, {"model": ...}), or the object itself."""
    for key in ("state_dict", "model", "module"):
        if key in ckpt and _tensors(ckpt[key]):
            return _tensors(ckpt[key])
    return _tensors(ckpt)


def _take(sd: dict[str, torch.Tensor], prefix: str, drop: tuple[str, ...] = ()) -> tuple[dict, list[str]]:
    enc, ignored = {}, []
    for k, v in sd.items():
        rest = k[len(prefix):] if k.startswith(prefix) else None
        if rest is None or rest.startswith(drop):
            ignored.append(k)
        else:
            enc[rest] = v
    return enc, ignored


def _ssl_bench(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    return _take(_tensors(ckpt.get("model")), "backbone.")


def _torchvision(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    return _take(_inner(ckpt), "", HEAD_PREFIXES)


def _moco_v2(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    sd = {re.sub(r"^module\.", "", k): v for k, v in _inner(ckpt).items()}
    return _take(sd, "encoder_q.", HEAD_PREFIXES)


def _moco_v3(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    sd = {re.sub(r"^module\.", "", k): v for k, v in _inner(ckpt).items()}
    return _take(sd, "base_encoder.", HEAD_PREFIXES)


def _solo_learn(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    return _take(_inner(ckpt), "backbone.", HEAD_PREFIXES)


def _lightly(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    enc, ignored = _take(_inner(ckpt), "backbone.", HEAD_PREFIXES)
    if not any(re.match(r"^\d+\.", k) for k in enc):
        return enc, ignored
    named = {}
    for k, v in enc.items():
        idx, _, rest = k.partition(".")
        if idx in LIGHTLY_INDEX:
            named[f"{LIGHTLY_INDEX[idx]}.{rest}"] = v
        else:
            ignored.append(f"backbone.{k}")
    return named, ignored


def _mae(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    return _take(_inner(ckpt), "", HEAD_PREFIXES + MAE_TRAINING_ONLY)


def _dino(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    sd = _tensors(ckpt.get("teacher")) or _inner(ckpt)
    other = [f"student.{k}" for k in _tensors(ckpt.get("student"))]
    sd = {re.sub(r"^(module\.)?(backbone\.)?", "", k): v for k, v in sd.items()}
    enc, ignored = _take(sd, "", HEAD_PREFIXES)
    return enc, ignored + other


def _ijepa_part(part: str) -> Converter:
    def convert(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
        enc = {re.sub(r"^module\.", "", k): v for k, v in _tensors(ckpt.get(part)).items()}
        ignored = [f"{name}.{k}" for name in IJEPA_PARTS if name != part for k in _tensors(ckpt.get(name))]
        return enc, ignored

    return convert


IJEPA_PARTS = ("encoder", "predictor", "target_encoder")
FORMATS: dict[str, Converter] = {"ssl_bench": _ssl_bench, "torchvision": _torchvision, "timm": _torchvision,
                                 "simclr_v1": _torchvision, "byol": _torchvision, "moco_v2": _moco_v2,
                                 "moco_v3": _moco_v3, "solo_learn": _solo_learn, "lightly": _lightly,
                                 "mae": _mae, "dino": _dino, "ijepa": _ijepa_part("target_encoder"),
                                 "ijepa_context": _ijepa_part("encoder")}


def detect(ckpt: Any) -> str | None:
    """The layout a checkpoint's keys follow, or None."""
    if not isinstance(ckpt, dict):
        return None
    if _tensors(ckpt.get("target_encoder")) and _tensors(ckpt.get("encoder")):
        return "ijepa"
    if _tensors(ckpt.get("teacher")):
        return "dino"
    if _tensors(ckpt.get("model")) and any(k.startswith("backbone.") for k in _tensors(ckpt["model"])):
        return "ssl_bench"
    keys = list(_inner(ckpt))
    if any(k.startswith(("module.encoder_q.", "encoder_q.")) for k in keys):
        return "moco_v2"
    if any(k.startswith(("module.base_encoder.", "base_encoder.")) for k in keys):
        return "moco_v3"
    if any(re.match(r"^backbone\.\d+\.", k) for k in keys):
        return "lightly"
    if any(k.startswith("backbone.") for k in keys):
        return "solo_learn"
    if any(k.startswith(("conv1.", "layer1.")) for k in keys):
        return "torchvision"
    if any(k.startswith("blocks.0.") for k in keys):  # a ViT in timm's names
        return "mae" if "model" in ckpt or any(k.startswith(MAE_TRAINING_ONLY) for k in keys) else "timm"
    return None
