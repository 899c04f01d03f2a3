"""Weights trained elsewhere, evaluated under the suite's protocols: nothing to train.

`{name: pretrained, label: byol-official, params: {checkpoint: PATH, format: auto}}` loads the encoder of an
official release (BYOL, SimCLR v1 converted; MoCo v2/v3), a solo-learn or lightly checkpoint, a torchvision or
timm state dict, or an ssl-bench final.pt into the suite's backbone (key layouts: ssl_bench/weights/formats.py, a
registry plugins extend). The record carries the file's path, size, sha256, detected format, the loaded / ignored /
missing key counts and any dtype cast; the sha256 is also part of the run id. Non-finite weights are refused (a
failed row).
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ssl_bench.weights.formats import CHECKPOINT_FORMATS
from ssl_bench.weights.load import load_encoder, sha256
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

    @classmethod
    def fingerprint(cls, params: dict[str, Any]) -> dict[str, str]:
        """The checkpoint's sha256 goes into the run id: a file replaced in place (or the same relative path
        elsewhere) is a new run on --resume, never the old numbers under a new file."""
        return {"checkpoint_sha256": sha256(params["checkpoint"])}

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params: Any):
        super().__init__(backbone, num_classes, **params)
        self.checkpoint_info = load_encoder(self.backbone, self.hparams["checkpoint"], self.hparams["format"])

    def record_info(self) -> dict[str, Any]:
        return {"released_weights": self.checkpoint_info}
