"""The kNN monitor: kNN top-1 of the encoder being trained, every N epochs, into that epoch's metrics row.

solo-learn and lightly both watch a kNN accuracy while pretraining [solo-learn, lightly]; lightly reports its
maximum over epochs [lightly], which the `knn_max` evaluation reads back from metrics.jsonl. Here a FIXED,
seeded subset of the pretraining dataset's val split is classified (the test split is never used to pick an
epoch) against a memory bank of train-split features computed afresh with the same encoder.

The monitor must not change training: it runs the encoder in eval mode (BN statistics untouched) under
no_grad, restores every module's train/eval flag afterwards, and forks the RNGs so that nothing it does (a
DataLoader drawing a seed from the global generator, say) moves a random stream the training reads.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ssl_bench.data.types import DatasetBundle
from ssl_bench.errors import UserError
from ssl_bench.evalkit.features import extract
from ssl_bench.evalkit.knn import knn_predict
from ssl_bench.metrics import topk_accuracy
from ssl_bench.engine.metrics_log import MetricsLog

VAL_SUBSET_SEED = 20_061  # fixed for every run: methods and seeds are compared on the same val images
BANK_SUBSET_SEED = 20_062
KNN_KEY = "knn_top1"  # the metrics-row field the monitor writes and knn_max reads


def fixed_subset(n: int, size: int | None, seed: int) -> torch.Tensor | None:
    """Sorted indices of a seeded random `size`-subset of range(n); None when it would be all of it."""
    if size is None or size >= n:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].sort().values


@contextmanager
def isolated_eval(module: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode and no_grad inside; afterwards every submodule's `training` flag and the RNG states are as
    they were (the training loop never sees that this ran)."""
    flags = [(m, m.training) for m in module.modules()]
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            module.eval()
            yield
    finally:
        for m, flag in flags:
            m.training = flag


class KnnMonitor:
    """`on_epoch_end` hook of engine.trainer.pretrain: {knn_top1, knn_time_s} on monitored epochs, else {}.

    Monitored epochs: every `every`-th (epoch index e with (e + 1) % every == 0) and always the last one.
    Under torchrun every rank calls it (feature extraction gathers shards), so all ranks compute the same
    value; only rank 0 writes metrics rows."""

    def __init__(self, cfg: dict[str, Any], encoder: nn.Module, bundle: DatasetBundle, image_size: int,
                 device: torch.device, epochs: int, num_workers: int = 0):
        if bundle.train.multilabel:
            raise UserError(f"pretrain.knn_monitor: dataset '{bundle.name}' is multi-label; allowed: a "
                            "single-label pretraining dataset (the monitor reports top-1)")
        if len(bundle.val) == 0:
            raise UserError(f"pretrain.knn_monitor: dataset '{bundle.name}' has an empty val split; allowed: a "
                            "dataset with val images (set its val_fraction)")
        self.cfg, self.encoder, self.device, self.epochs = cfg, encoder, device, epochs
        self.num_classes = bundle.num_classes
        val_idx = fixed_subset(len(bundle.val), cfg["val_size"], VAL_SUBSET_SEED)
        bank_idx = fixed_subset(len(bundle.train), cfg["bank_size"], BANK_SUBSET_SEED)
        self.val = bundle.val if val_idx is None else bundle.val.subset(val_idx)
        self.bank = bundle.train if bank_idx is None else bundle.train.subset(bank_idx)
        self.prep = {"image_size": image_size, "in_chans": bundle.channels, "mean": bundle.mean,
                     "std": bundle.std, "device": device, "num_workers": num_workers}

    def due(self, epoch: int) -> bool:
        return (epoch + 1) % self.cfg["every"] == 0 or epoch + 1 == self.epochs

    def measure(self) -> float:
        """kNN top-1 (%) of the encoder as it is now, on the fixed val subset against the bank."""
        with isolated_eval(self.encoder, self.device):
            bank_x, bank_y = extract(self.encoder, self.bank, **self.prep)
            val_x, val_y = extract(self.encoder, self.val, **self.prep)
            scores = knn_predict(bank_x.to(self.device), bank_y, val_x, self.num_classes, k=self.cfg["k"],
                                 temperature=self.cfg["temperature"])
        return topk_accuracy(scores.cpu(), val_y, 1)

    def __call__(self, epoch: int) -> dict[str, Any]:
        if not self.due(epoch):
            return {}
        t0 = time.perf_counter()
        top1 = self.measure()
        return {KNN_KEY: top1, "knn_time_s": time.perf_counter() - t0}


def training_monitors(p: dict[str, Any], model: nn.Module, bundle: DatasetBundle, image_size: int,
                      device: torch.device, seed: int, epochs: int) -> tuple[KnnMonitor | None, Any]:
    """(kNN monitor, online linear head) for a run whose validated `pretrain` section is `p`; None where off.
    `model` is the method as trained (its encoder() is what both watch)."""
    knn = online = None
    if p.get("knn_monitor"):
        knn = KnnMonitor(p["knn_monitor"], model.encoder(), bundle, image_size, device, epochs, p["num_workers"])
    if p.get("online_linear"):
        if bundle.train.multilabel:
            raise UserError(f"pretrain.online_linear: dataset '{bundle.name}' is multi-label; allowed: a "
                            "single-label pretraining dataset")
        from ssl_bench.engine.online_head import OnlineLinear

        online = OnlineLinear(model.encoder(), bundle.num_classes, p["online_linear"]["base_lr"], p["batch_size"],
                              seed, device)
    return knn, online


def knn_curve(run_dir: str | Path) -> list[tuple[int, float]]:
    """(epochs trained, knn_top1) for every monitored epoch in the run's metrics log (jsonl, else csv), in
    order. `epochs trained` is the row's 0-based `epoch` + 1."""
    for fmt in ("jsonl", "csv"):
        log = MetricsLog(Path(run_dir), fmt)
        if log.path.exists():
            curve = {}
            for row in log.rows():
                value = row.get(KNN_KEY)
                if isinstance(value, (int, float)) and not isinstance(value, bool):  # csv: '' if not monitored
                    curve[int(row["epoch"]) + 1] = float(value)
            return sorted(curve.items())
    return []
