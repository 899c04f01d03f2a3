"""One pretraining run of a suite's matrix: its resolved config, hash and folder name."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .suite import BackboneSpec, DatasetSpec, MethodSpec, Suite

# Settings that change what is trained; device, workers and logging do not.
TRAINING_KEYS = ("batch_size", "amp", "sync_bn")


@dataclass
class RunSpec:
    method: MethodSpec
    backbone: BackboneSpec
    dataset: DatasetSpec
    seed: int
    pretrain: dict[str, Any]

    def config(self) -> dict[str, Any]:
        return {
            "method": self.method.name, "params": self.method.params, "optim": self.method.optim,
            "views": self.method.views, "blur_small_images": self.method.blur_small_images,
            "epochs": self.method.epochs, "backbone": self.backbone.name, "backbone_kwargs": self.backbone.kwargs,
            "small_stem": self.backbone.small_stem, "dataset": self.dataset.name,
            "image_size": self.dataset.image_size, "dataset_params": self.dataset.params, "seed": self.seed,
            **{k: self.pretrain[k] for k in TRAINING_KEYS},
        }

    @property
    def config_hash(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def run_id(self) -> str:
        return f"{self.method.label}-{self.backbone.label}-{self.dataset.name}-s{self.seed}-{self.config_hash[:8]}"


def expand(suite: Suite) -> list[RunSpec]:
    """methods x backbones x datasets x seeds, in that nesting order."""
    return [RunSpec(m, b, d, s, suite.pretrain)
            for d in suite.datasets for b in suite.backbones for m in suite.methods for s in suite.seeds]


def eval_key(name: str, params: dict[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True, default=str)
    return f"{name}:{hashlib.sha256(blob.encode()).hexdigest()[:8]}"
