"""The evaluation contract: a frozen encoder and datasets in, result rows out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from .data.types import DatasetBundle


@dataclass
class EvalContext:
    """What an evaluation may use. Feature extraction is cached per (dataset, split) and shared."""

    encoder: nn.Module  # frozen, eval mode; never train it in place (deepcopy to fine-tune)
    feature_dim: int
    method: str
    method_needs_labels: bool  # the supervised baseline: semi-supervised trains it from scratch
    seed: int
    device: torch.device
    pretrain: DatasetBundle
    image_size: int  # input side length the encoder was trained at
    in_chans: int
    mean: tuple[float, ...]  # the encoder's input normalization (pretraining dataset's)
    std: tuple[float, ...]
    out_dir: str  # this run's folder, for artifacts (label subsets, ...)
    get_dataset: Callable[[str], DatasetBundle]
    features: Callable[[str, str], tuple[torch.Tensor, torch.Tensor]]  # (dataset, split) -> feats, labels
    new_encoder: Callable[[], nn.Module]  # a freshly initialised backbone of the same architecture
    batch_size: int = 256
    extra: dict[str, Any] = field(default_factory=dict)


class Evaluation:
    """Base class of an evaluation protocol.

    `defaults` declares the hyperparameters (the suite's `params:` is validated against them).
    `evaluate` returns rows: dicts with at least protocol, eval_dataset, metric and value;
    anything else goes into the record's `extra`. A row that did not measure the frozen encoder (it fine-tuned a
    copy, or trained a fresh network) sets `uses_frozen_encoder: False`, so a collapsed encoder does not mark
    it `collapsed`. An exception raised by `evaluate` becomes one failed row naming it; the suite goes on.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown parameters {sorted(unknown)}")
        self.params: dict[str, Any] = {**self.defaults, **params}

    def evaluate(self, ctx: EvalContext) -> list[dict[str, Any]]:
        raise NotImplementedError
