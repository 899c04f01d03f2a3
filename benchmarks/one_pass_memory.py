"""Peak memory of the one-pass feature store on a 10,000-image set: pooled features and float16 tokens.

Fashion-MNIST's 10,000 test images at 32 px through a ViT-Tiny (patch 4: 64 tokens x 192 dims) with random weights,
extracted by the run's FeatureStore with the kinds the attentive probe and kNN ask for (pooled + tokens) in one
pass. Prints the process's peak RSS (VmHWM) before and after, the stored bytes, and the encoder passes. Usage:

    OMP_NUM_THREADS=1 python benchmarks/one_pass_memory.py [--images 10000] [--kinds pooled,tokens]
"""
from __future__ import annotations

import argparse
import time

import torch


def vm(field: str) -> float:
    """A /proc/self/status memory field in MiB (VmHWM: peak RSS so far, VmRSS: now)."""
    text = open("/proc/self/status").read()
    return int(text.split(f"{field}:")[1].split()[0]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--kinds", default="pooled,tokens")
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    from ssl_bench.create import create_backbone, create_dataset
    from ssl_bench.evalkit.features import feature_cache, freeze
    from ssl_bench.registry import load_plugins

    load_plugins()
    torch.manual_seed(0)
    bundle = create_dataset("fashion_mnist")
    n = min(args.images, len(bundle.test))
    enc = freeze(create_backbone("vit_tiny_patch16_224", in_chans=1, image_size=32, patch_size=4))
    store = feature_cache(enc, lambda name: bundle, image_size=32, in_chans=1, mean=bundle.mean, std=bundle.std,
                          device=torch.device("cpu"), batch_size=args.batch_size, kinds=args.kinds.split(","))
    split = "test" if n == len(bundle.test) else f"test/{n}"
    base = vm("VmHWM")
    t0 = time.perf_counter()
    store("fashion_mnist", split)
    took = time.perf_counter() - t0
    stored = sum(t.numel() * t.element_size() for (x, y) in store.cache.values() for t in (x,))
    print(f"images {n}, kinds {args.kinds}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for (name, sp, view, kind), (x, _) in store.cache.items():
        print(f"  {kind:7s} {tuple(x.shape)} {x.dtype}: {x.numel() * x.element_size() / 2**20:.1f} MiB")
    print(f"stored {stored / 2**20:.1f} MiB; encoder passes {len(store.passes)}; extraction {took:.1f} s")
    print(f"peak RSS before extraction {base:.0f} MiB, after {vm('VmHWM'):.0f} MiB "
          f"(+{vm('VmHWM') - base:.0f} MiB); RSS now {vm('VmRSS'):.0f} MiB")


if __name__ == "__main__":
    main()
