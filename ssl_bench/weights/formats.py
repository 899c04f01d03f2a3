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

Each layout is registered with `@register_checkpoint_format(name, detect=..., priority=...)`: `auto` picks the
layout whose `detect` accepts the checkpoint first, in priority order (a more specific layout first). A plugin adds
a layout the same way, in its own file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ssl_bench.registry import CHECKPOINT_FORMATS

Converter = Callable[[dict[str, Any]], tuple[dict[str, torch.Tensor], list[str]]]


@dataclass(frozen=True)
class CheckpointFormat:
    """A published key layout: `convert(checkpoint) -> (encoder state dict, ignored keys)`; `detect(checkpoint)`
    says whether `auto` should pick it (tried in `priority` order, lowest first; None: only by name)."""

    name: str
    convert: Converter
    detect: Callable[[dict[str, Any]], bool] | None = None
    priority: int = 100
    description: str = ""

    def __post_init__(self) -> None:  # what `ssl-bench list checkpoint_formats` shows
        object.__setattr__(self, "__doc__", self.description)




def register_checkpoint_format(name: str, *, detect: Callable[[dict[str, Any]], bool] | None = None,
                               priority: int = 100, doc: str | None = None) -> Callable[[Converter], Converter]:
    """Register a converter under `name` (its docstring, or `doc`, is what `ssl-bench list` shows)."""

    def deco(convert: Converter) -> Converter:
        lines = (doc or convert.__doc__ or "").strip().splitlines()
        text = lines[0] if lines else ""
        CHECKPOINT_FORMATS.register(name)(CheckpointFormat(name, convert, detect, priority, text))
        return convert

    return deco
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


def _prefixed(ckpt: dict[str, Any], prefix: str) -> bool:
    return any(k.startswith((f"module.{prefix}", prefix)) for k in _inner(ckpt))


def _is_ijepa(ckpt: dict[str, Any]) -> bool:
    return bool(_tensors(ckpt.get("target_encoder")) and _tensors(ckpt.get("encoder")))


def _is_vit(ckpt: dict[str, Any]) -> bool:
    return any(k.startswith("blocks.0.") for k in _inner(ckpt))  # a ViT in timm's names


def _is_mae(ckpt: dict[str, Any]) -> bool:
    return _is_vit(ckpt) and ("model" in ckpt or any(k.startswith(MAE_TRAINING_ONLY) for k in _inner(ckpt)))


def _has_model_backbone(ckpt: dict[str, Any]) -> bool:
    return any(k.startswith("backbone.") for k in _tensors(ckpt.get("model")))


def _is_resnet(ckpt: dict[str, Any]) -> bool:
    return any(k.startswith(("conv1.", "layer1.")) for k in _inner(ckpt))


def _is_solo_learn(ckpt: dict[str, Any]) -> bool:
    return any(k.startswith("backbone.") for k in _inner(ckpt))


def _is_lightly_sequential(ckpt: dict[str, Any]) -> bool:
    return any(re.match(r"^backbone\.\d+\.", k) for k in _inner(ckpt))


def _is_dino(ckpt: dict[str, Any]) -> bool:
    return bool(_tensors(ckpt.get("teacher")))


def _is_moco_v2(ckpt: dict[str, Any]) -> bool:
    return _prefixed(ckpt, "encoder_q.")


def _is_moco_v3(ckpt: dict[str, Any]) -> bool:
    return _prefixed(ckpt, "base_encoder.")


@register_checkpoint_format("ssl_bench", detect=_has_model_backbone, priority=30)
def _ssl_bench(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    """ssl-bench's final.pt: the encoder is model.backbone.*"""
    return _take(_tensors(ckpt.get("model")), "backbone.")


@register_checkpoint_format("torchvision", detect=_is_resnet, priority=80)
def _torchvision(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    """A plain ResNet state dict (conv1, bn1, layer1-4, fc), also under state_dict; fc dropped"""
    return _take(_inner(ckpt), "", HEAD_PREFIXES)


@register_checkpoint_format("moco_v2", detect=_is_moco_v2, priority=40)
def _moco_v2(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    """facebookresearch/moco: module.encoder_q.* (the key encoder, queue and MLP head ignored)"""
    sd = {re.sub(r"^module\.", "", k): v for k, v in _inner(ckpt).items()}
    return _take(sd, "encoder_q.", HEAD_PREFIXES)


@register_checkpoint_format("moco_v3", detect=_is_moco_v3, priority=50)
def _moco_v3(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    """facebookresearch/moco-v3: module.base_encoder.* (momentum encoder, predictor and projector ignored)"""
    sd = {re.sub(r"^module\.", "", k): v for k, v in _inner(ckpt).items()}
    return _take(sd, "base_encoder.", HEAD_PREFIXES)


@register_checkpoint_format("solo_learn", detect=_is_solo_learn, priority=70)
def _solo_learn(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    """A solo-learn Lightning checkpoint: state_dict backbone.*"""
    return _take(_inner(ckpt), "backbone.", HEAD_PREFIXES)


@register_checkpoint_format("lightly", detect=_is_lightly_sequential, priority=60)
def _lightly(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    """A lightly model saved whole: backbone.* in timm names or nn.Sequential indices"""
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


@register_checkpoint_format("mae", detect=_is_mae, priority=90)
def _mae(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    """facebookresearch/mae: model: ViT keys; the decoder and mask token of a training checkpoint ignored"""
    return _take(_inner(ckpt), "", HEAD_PREFIXES + MAE_TRAINING_ONLY)


@register_checkpoint_format("dino", detect=_is_dino, priority=20)
def _dino(ckpt: dict[str, Any]) -> tuple[dict, list[str]]:
    """facebookresearch/dino: the backbone-only release, or a full checkpoint's teacher"""
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


register_checkpoint_format("ijepa", detect=_is_ijepa, priority=10,
                           doc="facebookresearch/ijepa: the target (EMA) encoder, as the paper evaluates it")(
    _ijepa_part("target_encoder"))
register_checkpoint_format("ijepa_context", doc="facebookresearch/ijepa: the context encoder")(_ijepa_part("encoder"))
register_checkpoint_format("timm", detect=_is_vit, priority=95, doc="timm's own names (a ResNet as torchvision's)")(
    _torchvision)
for _alias, _doc in (("simclr_v1", "SimCLR v1 converted to torchvision keys (tonylins/simclr-converter)"),
                     ("byol", "BYOL converted to torchvision keys (ajtejankar/byol-convert)")):
    register_checkpoint_format(_alias, doc=_doc)(_torchvision)


def detect(ckpt: Any) -> str | None:
    """The layout a checkpoint's keys follow (the first registered layout, by priority, whose detect accepts
    it), or None."""
    if not isinstance(ckpt, dict):
        return None
    for fmt in sorted((f for _, f in CHECKPOINT_FORMATS.items() if f.detect), key=lambda f: (f.priority, f.name)):
        if fmt.detect(ckpt):
            return fmt.name
    return None
