"""Weights trained elsewhere, evaluated under the suite's protocols: nothing to train.

`{name: pretrained, label: byol-official, params: {checkpoint: PATH, format: auto}}` loads the encoder of an
official release (BYOL, SimCLR v1 converted; MoCo v2/v3), a solo-learn or lightly checkpoint, a torchvision or
timm state dict, or an ssl-bench final.pt into the suite's backbone (key layouts: ssl_bench/weights/formats.py, a registry plugins extend).
The record carries the file's path, size, sha256, detected format and the loaded / ignored / missing key counts.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ssl_bench.weights.formats import CHECKPOINT_FORMATS
from ssl_bench.weights.load import load_encoder
from ssl_bench.method import Method
from ssl_bench.registry import register_method
from ssl_bench.validate import ExistingFile, OneOf


@register_method("pretrained")
class Pretrained(Method):
    """Released or exported weights loaded into the backbone (no pretraining)."""

    trainable = False
    augmentation = {"views": []}
    defaults = {"checkpoint": "", "format": "auto"}
    param_ranges = {"checkpoint": ExistingFile(), "format": OneOf(lambda: ("auto", *CHECKPOINT_FORMATS.names()))}

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__(backbone, num_classes, **params)
        self.checkpoint_info = load_encoder(self.backbone, self.hparams["checkpoint"], self.hparams["format"])

    def record_info(self) -> dict[str, Any]:
        return {"released_weights": self.checkpoint_info}
