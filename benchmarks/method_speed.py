"""Per-method training speed on the tiny config: the engine's images/s against the same method's model-only step,
and each method's augmentation cost per source image (multi-crop beside the 2-view methods), in one run.

    python benchmarks/method_speed.py --threads 2                     # every registered method, CPU
    python benchmarks/method_speed.py --methods dino,swav,byol --rounds 3
    python benchmarks/method_speed.py --quick                         # smoke run: tiny batch, 1 + 1 steps

Tiny config (harness.TINY): timm resnet18 with channels (16, 32, 64, 128), small-image stem, 1 channel, 32 px
views (local crops at their recipes' fraction: 14 px for 96/224), Fashion-MNIST in memory (digits if missing).
Per method, in one process: the engine is pretrain() on the data with the method's own views, optimizer recipe
and schedules (TrainSettings.prefetch as a suite's `auto` gives: off on the CPU); the model-only step is the
engine's own model_step on ready random views of the method's view shapes (no data, no augmentation: the
ceiling). They run paired, step by step (one model-only step inside each engine step's on_step callback), so a
shared machine's load hits both alike; engine / model-only is the median of the per-step ratios. The
augmentation is the method's MultiViewAugment on one batch, ms per source image.
`--heads small` narrows the heads (the CPU suites' widths, SMALL_HEADS); the default keeps each method's own.
Not a test: never collected by pytest (tests/test_benchmarks.py runs --quick).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import harness  # noqa: E402
from ssl_bench.create import create_backbone  # noqa: E402
from ssl_bench.data.augment import MultiViewAugment, ViewRecipe  # noqa: E402
from ssl_bench.engine.prefetch import resolve_prefetch  # noqa: E402
from ssl_bench.engine.trainer import TrainSettings, model_step, pretrain, setup_loop  # noqa: E402
from ssl_bench.registry import METHODS, load_plugins  # noqa: E402

SMOKE = "SMOKE RUN (--quick): checks that every method runs; the numbers are NOT a measurement"
TARGET = 0.90  # issue 23: no method below 90% of its own model-only step on the CPU
# Head widths for tiny CPU runs (the zoo suite's kind); methods not listed keep their defaults.
SMALL_HEADS = {
    "byol": {"proj_hidden_dim": 512, "pred_hidden_dim": 512, "proj_dim": 128},
    "simclr": {"proj_hidden_dim": 512, "proj_dim": 128},
    "moco_v2": {"proj_hidden_dim": 512, "proj_dim": 128, "queue_size": 4096},
    "moco_v3": {"proj_hidden_dim": 512, "pred_hidden_dim": 512, "proj_dim": 128},
    "nnclr": {"proj_hidden_dim": 512, "pred_hidden_dim": 512, "proj_dim": 128, "queue_size": 4096},
    "swav": {"hidden_mlp": 512, "feat_dim": 128, "nmb_prototypes": 300},
    "dino": {"hidden_dim": 512, "bottleneck_dim": 128, "out_dim": 1024},
}


def trainable_methods(names: str | None) -> list[str]:
    load_plugins()
    every = [n for n in sorted(METHODS.names()) if getattr(METHODS.get(n), "trainable", True)]
    if names is None:
        return every
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    bad = [n for n in chosen if n not in every]
    if bad or not chosen:
        raise SystemExit(f"error: --methods: bad value {names!r}; allowed: a comma-separated list of {', '.join(every)}")
    return chosen


def build(name: str, heads: str, seed: int):
    cls = METHODS.get(name)
    params = SMALL_HEADS.get(name, {}) if heads == "small" else {}
    torch.manual_seed(seed)
    cfg = harness.TINY
    backbone = create_backbone(cfg.backbone, in_chans=cfg.in_chans, image_size=cfg.size, channels=list(cfg.channels))
    model = cls(backbone, num_classes=10, **params)
    views = [ViewRecipe.from_dict({**ViewRecipe().to_dict(), **v}, name) for v in
             cls.view_recipes({**cls.defaults, **params})]
    return model, views, cls.optim_recipe()


def settings(optim: dict, batch: int, seed: int, steps: int | None = None) -> TrainSettings:
    cpu = torch.device("cpu")
    return TrainSettings(epochs=1, batch_size=batch, optim=optim, device=cpu, seed=seed, progress=False,
                         total_steps=steps, prefetch=resolve_prefetch("auto", cpu))


class ModelOnly:
    """The engine's own model_step on ready random views of the method's shapes (channels_last as the engine
    makes them): no data, no augmentation, the ceiling of a training step. Its own model and optimizer."""

    def __init__(self, name: str, args):
        model, views, optim = build(name, args.heads, args.seed)
        size, self._tmp = harness.TINY.size, tempfile.TemporaryDirectory()
        self.loop = setup_loop(model, 10 * args.batch, settings(optim, args.batch, args.seed, 1000), Path(self._tmp.name))
        fmt = torch.channels_last if self.loop.s.channels_last else torch.contiguous_format
        gen = torch.Generator().manual_seed(args.seed)
        self.views = [torch.randn(args.batch, harness.TINY.in_chans, r.out_size(size), r.out_size(size),
                                  generator=gen).contiguous(memory_format=fmt) for r in views]
        self.labels = torch.randint(0, 10, (args.batch,), generator=gen)
        self.pairs, self.step = self.loop.model.momentum_pairs(), 0
        self.loop.net.train()

    def __call__(self) -> float:
        """One step; its wall seconds."""
        t = time.perf_counter()
        loss = model_step(self.loop, self.views, self.labels, self.pairs, self.step)[0]
        float(loss.detach())  # the step is done (a host sync, as the engine's clock is after its step)
        self.step += 1
        return time.perf_counter() - t

    def close(self) -> None:
        self._tmp.cleanup()


def run_paired(name: str, data: harness.BenchData, args) -> tuple[list[float], list[float]]:
    """(engine step seconds, model-only step seconds), paired: after each engine step (pretrain's on_step, on
    the training thread) one model-only step runs, so both see the same load of a shared machine; warm-up
    steps are dropped. The engine step is the time from the end of the previous pair to this on_step: batch,
    augmentation and model step (prefetch is off on the CPU, so nothing else runs meanwhile)."""
    model, views, optim = build(name, args.heads, args.seed)
    augment = MultiViewAugment(views, harness.TINY.size, data.mean, data.std)
    train = harness.first_n(data.train, (args.warmup + args.steps) * args.batch)
    ceiling, engine_s, model_s, mark = ModelOnly(name, args), [], [], [time.perf_counter()]
    s = settings(optim, args.batch, args.seed)
    assert not s.prefetch, "paired timing needs the serial loop"

    def on_step(step: int) -> None:
        took = time.perf_counter() - mark[0]
        alone = ceiling()
        if step > args.warmup:
            engine_s.append(took)
            model_s.append(alone)
        mark[0] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        pretrain(model, train, augment, s, Path(tmp), on_step=on_step)
    ceiling.close()
    return engine_s, model_s


def augment_ms_per_image(name: str, data: harness.BenchData, args) -> float:
    _, views, _ = build(name, "small", args.seed)  # heads do not change the views
    augment = MultiViewAugment(views, harness.TINY.size, data.mean, data.std)
    images = data.train.images[:args.batch]
    gen = torch.Generator().manual_seed(args.seed)
    augment(images, gen)  # warm-up
    times = harness.call_times_ms(lambda: augment(images, gen), max(3, args.steps), torch.device("cpu"))
    return median(times) / args.batch


def describe_views(name: str) -> str:
    _, views, _ = build(name, "small", 0)
    sizes = [v.out_size(harness.TINY.size) for v in views]
    groups = [(s, sizes.count(s)) for s in dict.fromkeys(sizes)]
    return " + ".join(f"{n}x{s}" for s, n in groups)


def measure(names: list[str], data: harness.BenchData, args) -> dict[str, dict]:
    runs = {n: {"engine_s": [], "model_only_s": [], "augment_ms": []} for n in names}
    for r in range(args.rounds):
        for name in names:
            engine_s, model_s = run_paired(name, data, args)
            runs[name]["engine_s"] += engine_s
            runs[name]["model_only_s"] += model_s
            runs[name]["augment_ms"].append(augment_ms_per_image(name, data, args))
            print(f"  round {r + 1} {name:<10} engine {args.batch / median(engine_s):8.1f} img/s   model-only "
                  f"{args.batch / median(model_s):8.1f} img/s", flush=True)
    return runs


def table(names: list[str], runs: dict, args) -> list[dict]:
    views = {n: describe_views(n) for n in names}
    two_view = [median(runs[n]["augment_ms"]) for n in names if views[n].startswith("2x") and "+" not in views[n]]
    base = median(two_view) if two_view else None
    print(f"\n{SMOKE}" if args.quick else "")
    print(f"{'method':<12}{'views':<16}{'engine img/s':>14}{'model-only img/s':>18}{'engine/model-only':>19}"
          f"{'aug ms/img':>12}{'aug vs 2-view':>15}")
    rows = []
    for n in names:
        r = runs[n]
        eng, mo = args.batch / median(r["engine_s"]), args.batch / median(r["model_only_s"])
        ratio = median(m / e for e, m in zip(r["engine_s"], r["model_only_s"]))  # paired, step by step
        aug = median(r["augment_ms"])
        rel = aug / base if base else float("nan")
        flag = "" if ratio >= TARGET or args.quick else "  < 90%"
        print(f"{n:<12}{views[n]:<16}{eng:14.1f}{mo:18.1f}{100 * ratio:18.0f}%{aug:12.3f}{rel:14.2f}x{flag}")
        rows.append({"method": n, "views": views[n], "engine_img_s": eng, "model_only_img_s": mo,
                     "fraction_of_model_only": ratio, "augment_ms_per_image": aug, "augment_vs_2view": rel,
                     "runs": r})
    return rows


def parse(argv: list[str]):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=None, help="comma-separated (default: every trainable registered method)")
    p.add_argument("--quick", action="store_true", help="smoke run: batch 16, 1 warm-up + 1 timed step, 1 thread")
    p.add_argument("--batch", type=int, default=None, help="batch (default 256; --quick 16)")
    p.add_argument("--steps", type=int, default=None, help="timed step pairs per method (default 5; --quick 1)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (>= 1)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved repetitions; medians are reported")
    p.add_argument("--heads", default="default", choices=["default", "small"],
                   help="each method's own head widths, or SMALL_HEADS (--quick: small)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (--quick: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the table here")
    args = p.parse_args(argv)
    args.batch = args.batch or (16 if args.quick else 256)
    args.steps = args.steps or (1 if args.quick else 5)
    if args.quick:
        args.heads, args.threads = "small", args.threads or 1
    for field, value in (("--batch", args.batch), ("--steps", args.steps), ("--warmup", args.warmup),
                         ("--rounds", args.rounds)):
        if value < 1:
            raise SystemExit(f"error: {field}: bad value {value}; allowed: an integer >= 1")
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = trainable_methods(args.methods)
    t0 = time.perf_counter()
    data = harness.load_config_data(harness.TINY, (args.warmup + args.steps) * args.batch)
    print(f"== tiny: resnet18{list(harness.TINY.channels)} {harness.TINY.size} px, batch {args.batch}, "
          f"{args.warmup} warm-up + {args.steps} timed steps, {args.rounds} round(s), {args.heads} heads, "
          f"{torch.get_num_threads()} thread(s), data {data.name}", flush=True)
    rows = table(names, measure(names, data, args), args)
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1, default=str)
    return rows


if __name__ == "__main__":
    main()
