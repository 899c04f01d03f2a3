"""One pretraining run of a suite's matrix: its resolved config, hash and folder name."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ssl_bench.config.spec import BackboneSpec, DatasetSpec, MethodSpec, Suite
from ssl_bench.engine.device import resolved_amp_name
from ssl_bench.method import VIT_OPTIM_DEFAULTS

# Settings that change what is trained; device, workers and logging do not.
TRAINING_KEYS = ("batch_size", "amp", "sync_bn")
# Monitors add to what a run writes (the kNN curve in metrics.jsonl, the online head in final.pt) without
# changing its weights: in the config only when on, so the hashes of runs without them stay as they were, and a
# run trained without one is never reused by a suite that needs it (knn_max, online_linear read them back).
MONITOR_KEYS = ("knn_monitor", "online_linear")


@dataclass
class RunSpec:
    method: MethodSpec
    backbone: BackboneSpec
    dataset: DatasetSpec
    seed: int
    pretrain: dict[str, Any]

    def config(self) -> dict[str, Any]:
        return {
            "method": self.method.name, "params": self.method.params, "optim": _hashed_optim(self.method.optim),
            "views": self.method.views, "blur_small_images": self.method.blur_small_images,
            "epochs": self.method.epochs, "backbone": self.backbone.name, "backbone_kwargs": self.backbone.kwargs,
            "small_stem": self.backbone.small_stem, "dataset": self.dataset.name,
            "image_size": self.dataset.image_size, "dataset_params": self.dataset.params, "seed": self.seed,
            **{k: self.pretrain[k] for k in TRAINING_KEYS},
            **{k: self.pretrain[k] for k in MONITOR_KEYS if self.pretrain.get(k)},
            # images seen or wall time: only when given, so runs trained by epochs keep their ids
            **({"budget": self.method.budget} if self.method.budget else {}),
            # the content of a method's files (a released checkpoint): only when declared, ids stay otherwise
            **({"content": self.method.content} if self.method.content else {}),
            # a dataset's label (`imagenet` for an image_folder): only when given, so other runs keep their ids
            **({"dataset_label": self.dataset.label} if self.dataset.label != self.dataset.name else {}),
        }

    @property
    def config_hash(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def setting_hash(self) -> str:
        """The config hash without the seed: runs of one setting over several seeds share it (tables use it to
        keep different configurations that share a label apart)."""
        blob = json.dumps({k: v for k, v in self.config().items() if k != "seed"}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def run_id(self) -> str:
        return f"{self.method.label}-{self.backbone.label}-{self.dataset.label}-s{self.seed}-{self.config_hash[:8]}"


def _hashed_optim(optim: dict[str, Any]) -> dict[str, Any]:
    """The optim recipe without the ViT-recipe keys left at their defaults (they were added later)."""
    return {k: v for k, v in optim.items() if not (k in VIT_OPTIM_DEFAULTS and v == VIT_OPTIM_DEFAULTS[k])}


def expand(suite: Suite, amp: str | None = None) -> list[RunSpec]:
    """datasets x backbones x methods x seeds, outermost first (all seeds of a method run back to back).

    `amp` is the precision training really uses ("off", "fp16" or "bf16", engine.device.amp_name); the hash sees it
    instead of "auto", so a folder resumed on hardware that resolves auto otherwise gets new run ids rather
    than reusing weights trained at another precision. None: resolve the suite's amp here, as run_suite does.
    """
    pretrain = {**suite.pretrain, "amp": amp if amp is not None else resolved_amp(suite.pretrain)}
    return [RunSpec(m, b, d, s, pretrain)
            for d in suite.datasets for b in suite.backbones for m in suite.methods for s in suite.seeds]


def num_runs(suite: Suite) -> int:
    """How many runs expand() gives, without resolving anything about this machine."""
    return len(suite.datasets) * len(suite.backbones) * len(suite.methods) * len(suite.seeds)


def resolved_amp(pretrain: dict[str, Any]) -> str:
    """pretrain.amp with "auto" resolved for pretrain.device on this machine (engine.device)."""
    return resolved_amp_name(pretrain["amp"], pretrain["device"])


def eval_key(name: str, params: dict[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True, default=str)
    return f"{name}:{hashlib.sha256(blob.encode()).hexdigest()[:8]}"
