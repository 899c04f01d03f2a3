"""The online linear head: solo-learn's "online" accuracy, trained beside pretraining on detached features.

What solo-learn does (solo/methods/base.py, BaseMethod) [solo-learn]: `forward` runs the backbone on each
large crop of the training batch and feeds `self.classifier(feats.detach())`; the cross-entropy against the
batch's labels is averaged over the large crops; the classifier is its own parameter group with
`classifier_lr` (0.1 in the CIFAR recipes, scaled by batch / 256 in solo/args/pretrain.py) and weight decay 0,
under the same warmup + cosine schedule; its "online" accuracy is that classifier on the eval-mode features of
the validation images. Here the same, with two deliberate differences: the head has its own plain SGD
(momentum 0.9, no weight decay) instead of a group of the method's optimizer (solo-learn's LARS adapts the
classifier's weight too), so that the encoder's optimizer, its grad scaler and so its updates are exactly
those of a run without the head; and it is initialised from a forked RNG, so no random stream moves.

The head sees what the method's online encoder sees: both views for BYOL, SimCLR and MoCo v3, view 1 only for
moco_v2 (its view 2 goes through the key encoder alone; solo-learn's MoCo V2+ classifier sees both, since its
symmetric loss runs the query encoder on both views). The count is saved (`views_per_image`) and recorded in
the online_linear recipe, so such a row is never subtracted from solo-learn's number.

No backbone runs twice: a forward hook on `method.encoder()` copies the outputs of the method's own training
forward (every view it sends through the online encoder; a call on k views concatenated gives k * B rows,
labelled by repeating the batch's labels k times, views in order; with multi-crop only the calls on the largest
views, solo-learn's "large crops", count). The copies are detached, so no gradient
reaches the encoder. A method whose training_step never calls its encoder() module cannot have an online head.
engine.trainer.pretrain(..., online_head=...) trains it after each optimizer step, checkpoints it with the model
and removes the hook when it returns.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench import distributed as dist
from ssl_bench.errors import UserError
from ssl_bench.engine.schedules import scaled_lr

MOMENTUM = 0.9


class OnlineLinear:
    """A linear classifier on the encoder's detached training features; see the module docstring."""

    def __init__(self, encoder: nn.Module, num_classes: int, base_lr: float, batch_size: int, seed: int,
                 device: torch.device):
        self.dim, self.num_classes, self.seed, self.device = encoder.num_features, num_classes, seed, device
        self.peak = scaled_lr(base_lr, batch_size)  # [solo-learn] classifier_lr * batch / 256
        self.reset()
        self._feats: list[tuple[int, torch.Tensor]] = []  # (input side, features) per encoder call
        self._on = False
        self._hook = encoder.register_forward_hook(self._capture)

    def reset(self) -> None:
        """Fresh head and optimizer, the same every time (seeded, on a forked RNG)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.head = nn.Linear(self.dim, self.num_classes).to(self.device)
        self.opt = torch.optim.SGD(self.head.parameters(), lr=self.peak, momentum=MOMENTUM, weight_decay=0.0)
        self._loss, self._correct, self._seen = torch.zeros((), device=self.device), 0, 0
        self.views = 0  # views per image its features came from (moco_v2: 1, its key view never reaches it)

    def _capture(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if self._on:  # only the training forward: the kNN monitor and evaluations run the encoder too
            side = inputs[0].shape[-1] if inputs and isinstance(inputs[0], torch.Tensor) else 0
            self._feats.append((side, output.detach().flatten(1).to(torch.float32, copy=True)))

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Around the method's training forward: collect what its encoder outputs."""
        self._feats, self._on = [], True
        try:
            yield
        finally:
            self._on = False

    def step(self, labels: torch.Tensor, lr: float) -> None:
        """One SGD step of the head on the captured features of this batch (all ranks' rows under torchrun,
        so every rank holds the same head)."""
        captured, self._feats = self._feats, []
        largest = max((side for side, _ in captured), default=0)
        feats = [f for side, f in captured if side == largest]  # multi-crop: the global (largest) crops only
        if not feats:
            raise UserError("pretrain.online_linear: the method never called its encoder() module in "
                            "training_step, so there are no features to train the online head on; allowed: false")
        n = len(labels)
        if any(f.shape[0] % n for f in feats):
            raise RuntimeError(f"online_linear: the encoder saw {[f.shape[0] for f in feats]} images, not whole "
                               f"multiples of the batch of {n}: cannot label its features")
        self.views = max(self.views, sum(f.shape[0] // n for f in feats))
        x = dist.gather_no_grad(torch.cat(feats))
        y = dist.gather_no_grad(torch.cat([labels.repeat(f.shape[0] // n) for f in feats]))
        for group in self.opt.param_groups:
            group["lr"] = lr
        logits = self.head(x)
        loss = F.cross_entropy(logits, y)  # the mean over views = solo-learn's average over large crops
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self._loss += loss.detach() * len(y)
        self._correct = self._correct + (logits.detach().argmax(1) == y).sum()
        self._seen += len(y)

    def epoch_stats(self) -> dict[str, float]:
        """Mean training loss and top-1 (%) of the head over the epoch's training views; resets the sums."""
        if not self._seen:
            return {}
        out = {"online_loss": float(self._loss) / self._seen, "online_train_top1": 100.0 * float(self._correct) /
               self._seen}
        self._loss, self._correct, self._seen = torch.zeros((), device=self.device), 0, 0
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"head": self.head.state_dict(), "optimizer": self.opt.state_dict(), "views_per_image": self.views}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.head.load_state_dict(state["head"])
        self.opt.load_state_dict(state["optimizer"])
        self.views = int(state.get("views_per_image", 0))

    def close(self) -> None:
        self._hook.remove()


def online_logits(state: dict[str, Any], feats: torch.Tensor) -> torch.Tensor:
    """The saved head (final.pt's `online_linear`) applied to features: N x C logits."""
    head = state["head"]
    w, b = head["weight"].to(feats.device, torch.float32), head["bias"].to(feats.device, torch.float32)
    return feats.float() @ w.T + b
