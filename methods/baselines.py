"""The two baselines the BYOL paper's tables carry: random init and supervised training."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ssl_bench.method import Method
from ssl_bench.registry import register_method
from ssl_bench.validate import Range

from ssl_bench.methods.views import CROP_FLIP


@register_method("random")
class RandomInit(Method):
    """The same backbone, untrained: the floor every method must clear."""

    trainable = False
    augmentation = {"views": []}


@register_method("supervised")
class Supervised(Method):
    """The same backbone trained with labels (cross-entropy) on the same train split."""

    needs_labels = True
    defaults = {"label_smoothing": 0.0}
    param_ranges = {"label_smoothing": Range(0, 1, hi_open=True)}
    optim = {"optimizer": "sgd", "base_lr": 0.1, "weight_decay": 5e-4, "warmup_epochs": 0}
    augmentation = {"views": [CROP_FLIP]}

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params):
        super().__init__(backbone, num_classes, **params)
        if not num_classes:
            raise ValueError("supervised needs the dataset's number of classes")
        self.classifier = nn.Linear(backbone.num_features, num_classes)

    def training_step(self, views, labels=None):
        logits = self.classifier(self.backbone(views[0]))
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams["label_smoothing"])
        acc = (logits.detach().argmax(1) == labels).float().mean()
        return {"loss": loss, "train_acc": acc}
