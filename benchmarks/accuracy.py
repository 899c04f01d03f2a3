"""Accuracy must not pay for speed: kNN top-1 of the reference loop and of ssl-bench's engine after the same
epochs on the same Fashion-MNIST subset, same seed and same initial weights.

    python benchmarks/accuracy.py --subset 2048 --epochs 2 --batch 256 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import harness  # noqa: E402
from reference_loop import reference_train  # noqa: E402
from ssl_bench.engine.device import native_bf16  # noqa: E402
from ssl_bench.data.augment import MultiViewAugment, ViewRecipe  # noqa: E402
from ssl_bench.engine.trainer import TrainSettings, pretrain  # noqa: E402
from ssl_bench.evalkit.knn import knn_predict  # noqa: E402
from ssl_bench.evalkit.features import extract, freeze  # noqa: E402
from ssl_bench.metrics import topk_accuracy  # noqa: E402
from ssl_bench.registry import METHODS  # noqa: E402


def knn_top1(model, bundle, bank, test, device) -> float:
    enc = freeze(model.encoder()).to(device)
    kw = {"image_size": harness.SIZE, "in_chans": 1, "mean": bundle.mean, "std": bundle.std, "device": device}
    fb, yb = extract(enc, bank, **kw)
    ft, yt = extract(enc, test, **kw)
    return topk_accuracy(knn_predict(fb, yb, ft, bundle.num_classes), yt)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu")
    p.add_argument("--subset", type=int, default=2048, help="pretraining images (first N of the train split)")
    p.add_argument("--eval", type=int, default=2000, help="kNN bank and test images each")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    bundle = harness.load_data()
    train = harness.first_n(bundle.train, a.subset)
    bank = harness.first_n(bundle.val, min(a.eval, len(bundle.val)))
    test = harness.first_n(bundle.test, min(a.eval, len(bundle.test)))
    optim = METHODS.get("byol").optim_recipe()
    out = {"dataset": bundle.name, "subset": a.subset, "epochs": a.epochs, "batch": a.batch, "seed": a.seed,
           "knn": "k=200 T=0.07, bank = val split, test = test split"}
    out["random_init_top1"] = knn_top1(harness.build_byol(a.seed), bundle, bank, test, dev)

    t = time.perf_counter()
    ref = harness.build_byol(a.seed)
    reference_train(ref, train, harness.byol_views(), size=harness.SIZE, mean=bundle.mean, std=bundle.std,
                    batch_size=a.batch, epochs=a.epochs, optim=optim, device=dev, num_workers=a.workers, seed=a.seed)
    out["reference_time_s"] = time.perf_counter() - t
    out["reference_top1"] = knn_top1(ref, bundle, bank, test, dev)

    t = time.perf_counter()
    eng = harness.build_byol(a.seed)
    aug = MultiViewAugment([ViewRecipe.from_dict(v, "views") for v in harness.byol_views()], harness.SIZE,
                           bundle.mean, bundle.std)
    # the engine's levers as throughput.py's auto picks them: channels_last always, bf16 where native
    s = TrainSettings(epochs=a.epochs, batch_size=a.batch, optim=optim, device=dev,
                      amp_dtype=torch.bfloat16 if native_bf16(dev) else None, channels_last=True,
                      seed=a.seed, progress=False)
    out["engine_levers"] = {"amp_dtype": str(s.amp_dtype), "channels_last": s.channels_last}
    with tempfile.TemporaryDirectory() as tmp:
        pretrain(eng, train, aug, s, Path(tmp))
    out["engine_time_s"] = time.perf_counter() - t
    out["engine_top1"] = knn_top1(eng, bundle, bank, test, dev)
    out["difference_points"] = out["engine_top1"] - out["reference_top1"]
    print(json.dumps(out, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
