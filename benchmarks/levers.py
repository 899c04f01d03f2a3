"""Per-lever table: what each of ssl-bench's speed levers gives, each measured on its own.

Model-step levers (channels_last, bf16 autocast, one concatenated target forward, torch.compile) are toggled
one at a time on the model-only step (random views) against the peer baseline (fp32, contiguous, two target
forwards), rounds interleaved. The EMA and the data path are timed as components, in ms per training step.
"""
from __future__ import annotations

from statistics import median

import torch

import harness
from reference_loop import TwoViewDataset, peer_view, python_loop_ema
from ssl_bench.data.augment import MultiViewAugment, ViewRecipe
from ssl_bench.engine.ema import ema_update


def _ms(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    return median(harness.call_times_ms(fn, repeats, device))


def model_levers(args, dev: torch.device) -> dict:
    configs = {"baseline (fp32, contiguous, 2 target fwd)": {},
               "+ channels_last": {"channels_last": True},
               "+ bf16 autocast": {"amp_dtype": torch.bfloat16},
               "+ concat target forward": {"concat": True}}
    if args.compile:
        configs["+ torch.compile"] = {"compile": True}
        configs["+ channels_last + torch.compile"] = {"channels_last": True, "compile": True}
    steps = {name: harness.ModelStep(dev, args.lever_batch, args.seed, foreach_ema=True, **kw)
             for name, kw in configs.items()}
    for s in steps.values():
        s.timed(args.warmup)
    times: dict[str, list[float]] = {n: [] for n in configs}
    for r in range(args.rounds):
        names = list(configs)
        for name in names[r % len(names):] + names[:r % len(names)]:
            stamps = steps[name].timed(args.steps)
            per = [b - a for a, b in zip(stamps, stamps[1:])]
            if len(stamps) == 2:
                per = [per[0] / args.steps] * args.steps
            times[name] += per
            print(f"  round {r + 1} {name:<44} {1000 * median(per):9.1f} ms/step", flush=True)
    return {n: median(t) for n, t in times.items()}


def ema_lever(args, dev: torch.device) -> dict:
    model = harness.build_byol(args.seed).to(dev)
    pairs = model.momentum_pairs()
    return {"python loop": _ms(lambda: python_loop_ema(pairs, 0.99), 20, dev),
            "foreach lerp": _ms(lambda: ema_update(pairs, 0.99), 20, dev)}


def data_lever(args, dev: torch.device, batch: int) -> dict:
    """CPU time per step to make 2 views of `batch` images: per-image PIL (what the DataLoader workers
    spend, one process) vs the batched augmentation on the device."""
    bundle = harness.load_data()
    data = harness.first_n(bundle.train, batch)
    v1, v2 = harness.byol_views()
    ds = TwoViewDataset(data, peer_view(v1, harness.SIZE, bundle.mean, bundle.std),
                        peer_view(v2, harness.SIZE, bundle.mean, bundle.std))

    def peer_batch():
        items = [ds[i] for i in range(len(ds))]
        torch.stack([a for a, _, _ in items]), torch.stack([b for _, b, _ in items])

    aug = MultiViewAugment([ViewRecipe.from_dict(v, "views") for v in (v1, v2)], harness.SIZE, bundle.mean,
                           bundle.std)
    images = data.images.to(dev)
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    return {"per-image PIL (1 worker)": _ms(peer_batch, 5, dev),
            "batched on-device": _ms(lambda: aug(images, gen), 5, dev)}


def main(args) -> dict:
    dev = torch.device(args.device)
    print(f"lever table: model-only step at batch {args.lever_batch}, {args.warmup} warm-up + {args.steps} "
          f"timed steps x {args.rounds} round(s); components at batch {args.batch}", flush=True)
    ema = ema_lever(args, dev)
    data = data_lever(args, dev, args.batch)
    model = model_levers(args, dev)
    base = model["baseline (fp32, contiguous, 2 target fwd)"]
    print(f"\n{'model-step lever':<46}{'ms/step':>10}{'speedup':>9}")
    for name, t in model.items():
        print(f"{name:<46}{1000 * t:10.1f}{base / t:9.2f}x")
    full_step_ms = 1000 * base * args.batch / args.lever_batch  # scaled to the comparison's batch
    print(f"\n{'component (per step, batch ' + str(args.batch) + ')':<46}{'ms':>10}{'% of fp32 step':>16}")
    for group in (ema, data):
        for name, ms in group.items():
            print(f"{name:<46}{ms:10.1f}{100 * ms / full_step_ms:15.1f}%")
    return {"lever_batch": args.lever_batch, "model_step_s": model, "ema_ms": ema, "augment_ms": data,
            "batch": args.batch, "device": args.device}
