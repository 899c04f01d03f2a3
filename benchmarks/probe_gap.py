"""Where the SGD probe loses to the cached probe: one frozen encoder, one linear head, different training inputs.

    python benchmarks/probe_gap.py results/quickstart/runs/byol-*    # a finished pretraining run folder

Rebuilds the run's encoder from its run.json and final.pt, extracts train/test features with the test view,
then trains the same SGD head (Nesterov, cosine, 100 epochs, batch 256) on:
  - cached test-view features, raw and standardised (what `linear` does, but by SGD);
  - features of training views: full image resized bicubic / bilinear, with and without flips, and the
    paper's 0.08-1 crops + flips (5 augmented copies).
It prints test top-1 for each and how far each training view's features are from the test view's.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from ssl_bench.create import create_backbone
from ssl_bench.data.augment import apply_view, sample_view_params
from ssl_bench.data.augment_recipe import SUPERVISED_VIEW
from ssl_bench.create import create_dataset
from ssl_bench.engine import checkpoint
from ssl_bench.engine.schedules import warmup_cosine
from ssl_bench.evalkit.features import extract, freeze
from ssl_bench.registry import METHODS, load_plugins


def sgd_head(x: torch.Tensor, y: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor, lr: float, classes: int,
             standardise: bool = False, epochs: int = 100, batch: int = 256) -> float:
    if standardise:
        mu, sd = x.mean(0), x.std(0) + 1e-6
        x, xt = (x - mu) / sd, (xt - mu) / sd
    gen = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(x.shape[1], classes)
    torch.nn.init.normal_(head.weight, std=0.01)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, nesterov=True)
    per_epoch = max(len(x) // batch, 1)
    total, step = epochs * per_epoch, 0
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(per_epoch):
            idx = perm[i * batch:(i + 1) * batch]
            for g in opt.param_groups:
                g["lr"] = warmup_cosine(step, total, 0, lr)
            loss = F.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    return (head(xt).argmax(1) == yt).float().mean().item() * 100


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a pretraining run folder (holds run.json and final.pt)")
    p.add_argument("--lr", type=float, default=1.0)
    a = p.parse_args()
    torch.manual_seed(0)
    load_plugins()
    run = Path(a.run)
    info = json.loads((run / "run.json").read_text())
    cfg, size = info["config"], info["image_size"]
    bundle = create_dataset(cfg["dataset"], **cfg["dataset_params"])
    backbone = create_backbone(cfg["backbone"], in_chans=bundle.channels, image_size=size,
                               small_stem=cfg["small_stem"], **cfg["backbone_kwargs"])
    method = METHODS.get(cfg["method"])(backbone, num_classes=bundle.num_classes, **cfg["params"])
    if (run / "final.pt").exists():
        method.load_state_dict(checkpoint.load(run / "final.pt")["model"])
    enc = freeze(method.encoder())
    kw = dict(image_size=size, in_chans=bundle.channels, mean=bundle.mean, std=bundle.std,
              device=torch.device("cpu"))
    x_tr, y_tr = extract(enc, bundle.train, **kw)
    x_te, y_te = extract(enc, bundle.test, **kw)
    k, lr = bundle.num_classes, a.lr
    print(f"{cfg['method']} on {cfg['dataset']} ({len(x_tr)} train, {len(x_te)} test, {size} px), SGD lr {lr}")
    print(f"  cached test-view features, raw           {sgd_head(x_tr, y_tr, x_te, y_te, lr, k):5.1f}")
    print(f"  cached test-view features, standardised  {sgd_head(x_tr, y_tr, x_te, y_te, lr, k, True):5.1f}")
    images = bundle.train.images
    views = [("full image, bicubic, no flip", replace(SUPERVISED_VIEW, crop_scale=(1.0, 1.0), flip_p=0.0), 1),
             ("full image, bilinear, no flip",
              replace(SUPERVISED_VIEW, crop_scale=(1.0, 1.0), flip_p=0.0, interpolation="bilinear"), 1),
             ("full image, bilinear, flips",
              replace(SUPERVISED_VIEW, crop_scale=(1.0, 1.0), interpolation="bilinear"), 1),
             ("0.08-1 crops + flips, bilinear, x5", replace(SUPERVISED_VIEW, interpolation="bilinear"), 5)]
    for name, recipe, copies in views:
        gen, feats = torch.Generator().manual_seed(1), []
        for _ in range(copies):
            params = sample_view_params(recipe, len(images), images.shape[-2], images.shape[-1], gen, "cpu")
            with torch.no_grad():
                feats.append(enc(apply_view(images, params, recipe, size, bundle.mean, bundle.std)).flatten(1))
        x = torch.cat(feats)
        moved = ((x[:len(x_tr)] - x_tr).norm(dim=1).mean() / x_tr.norm(dim=1).mean()).item()
        acc = sgd_head(x, y_tr.repeat(copies), x_te, y_te, lr, k)
        print(f"  {name:<40} {acc:5.1f}   (features {moved:.0%} from the test view's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
