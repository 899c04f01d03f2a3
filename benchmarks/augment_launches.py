"""Ops (~ kernel launches) and wall time per MultiViewAugment call, BYOL's two views, per view size.

Counts the aten ops of one call with torch.profiler on the CPU: "top ops" are those called from Python, "kernel
ops" the top ones that compute (views, reshapes and no-op conversions left out), about one kernel launch each
on CUDA. On --device cuda the work on the GPU (kernels, copies, memsets) is also counted and the call is timed
with a synchronize on both ends. Each view is drawn from a generator on the device, as the trainer does.

    .venv/bin/python benchmarks/augment_launches.py                    # CPU, about 30 s
    .venv/bin/python benchmarks/augment_launches.py --device cuda --batch 256 --big-batch 256

Inputs: uint8 RGB batches of the view size (in-memory datasets store images at the view size) and, at 224, a
FolderBatch of mixed sizes (shorter side 160-256, aspect 3:4-4:3) on one canvas. The 224 cases run at
--big-batch (default 32 on the CPU: the op count does not depend on the batch, and 256 images take seconds).
"""
from __future__ import annotations

import argparse
from statistics import median

import torch
from torch.profiler import ProfilerActivity, profile

import harness
from ssl_bench.data.augment import MultiViewAugment, ViewRecipe
from ssl_bench.data.types import FolderBatch

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# ops that only re-describe or allocate memory: no kernel of their own
VIEWS = {"aten::view", "aten::_reshape_alias", "aten::unsqueeze", "aten::squeeze", "aten::expand", "aten::slice",
         "aten::select", "aten::transpose", "aten::permute", "aten::t", "aten::as_strided", "aten::unbind",
         "aten::split", "aten::chunk", "aten::alias", "aten::detach", "aten::empty", "aten::empty_like",
         "aten::empty_strided", "aten::lift_fresh", "aten::_unsafe_view", "aten::view_as", "aten::result_type",
         "aten::narrow", "aten::diagonal", "aten::unflatten", "aten::resolve_conj", "aten::resolve_neg"}
# ops that launch a kernel only when they copy (then they call another aten op)
COPY_IF_CALLING = {"aten::to", "aten::contiguous", "aten::reshape", "aten::flatten", "aten::expand_as",
                   "aten::type_as"}


def folder_batch(batch: int, gen: torch.Generator) -> FolderBatch:
    """Images of mixed sizes at the top-left of a zero canvas, as the folder loader batches them."""
    short = torch.randint(160, 257, (batch,), generator=gen)
    aspect = torch.empty(batch).uniform_(0.75, 4 / 3, generator=gen)
    long = (short * aspect).round().long().clamp(min=short)
    wide = torch.rand(batch, generator=gen) < 0.5
    sizes = torch.stack([torch.where(wide, short, long), torch.where(wide, long, short)], 1)
    pixels = torch.zeros(batch, 3, int(sizes[:, 0].max()), int(sizes[:, 1].max()), dtype=torch.uint8)
    for i, (h, w) in enumerate(sizes.tolist()):
        pixels[i, :, :h, :w] = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
    return FolderBatch(pixels, sizes)


def count_ops(fn) -> dict:
    """Aten ops of one call: "top", those called from Python; "kernels", the top ones that compute (views and
    no-op conversions left out), one CUDA kernel launch each or about (a matmul that must copy: two)."""
    acts = [ProfilerActivity.CPU]
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    if cuda:
        acts.append(ProfilerActivity.CUDA)
    with profile(activities=acts) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize()
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    ids = {id(e) for e in events}
    top = [e for e in events if e.cpu_parent is None or id(e.cpu_parent) not in ids]

    def computes(e) -> bool:
        if e.name in COPY_IF_CALLING:  # a copy somewhere below, not just a view
            return any(computes(c) for c in e.cpu_children if c.name.startswith("aten::"))
        return e.name not in VIEWS

    out = {"top": len(top), "kernels": sum(map(computes, top))}
    if cuda:
        out["cuda_launches"] = sum(1 for e in prof.events() if e.device_type.name == "CUDA")  # kernels, copies
    return out


def wall_ms(fn, repeats: int, device: torch.device) -> tuple[float, float]:
    """(median, min) ms per call; the min is the steadier one on a machine shared with other work."""
    times = harness.call_times_ms(fn, repeats, device)
    return median(times), min(times)


def first(images, n: int):
    """The first n images of a batch (tensor or FolderBatch)."""
    if isinstance(images, FolderBatch):
        return FolderBatch(images.pixels[:n], images.sizes[:n], images.eval_crop)
    return images[:n]


def cases(args, gen: torch.Generator) -> list[tuple[str, int, object, int]]:
    out = []
    for size in args.sizes:
        b = args.big_batch if size >= 224 else args.batch
        out.append((f"{size} px, tensor", size, torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8,
                                                               generator=gen), b))
        if size >= 224:
            out.append((f"{size} px, folder", size, folder_batch(b, gen), b))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--big-batch", type=int, default=None, help="batch of the 224 px cases (CPU: 32)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 96, 224])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="MultiViewAugment(compile=True), if it has it")
    args = ap.parse_args()
    dev = torch.device(args.device)
    if args.big_batch is None:
        args.big_batch = 32 if dev.type == "cpu" else args.batch
    torch.set_num_threads(args.threads)
    recipes = [ViewRecipe.from_dict(v, "views") for v in harness.byol_views()]
    extra = {"compile": True} if args.compile else {}
    print(f"BYOL views, device {dev}, {args.threads} CPU thread(s), median of {args.repeats} calls")
    cols = "case                  batch  top ops  kernel ops" + ("  cuda launches" if dev.type == "cuda" else "")
    print(cols + "  ms/call (median, min)")
    for name, size, images, b in cases(args, torch.Generator().manual_seed(0)):
        aug = MultiViewAugment(recipes, size, MEAN, STD, **extra)
        images = images.to(dev)
        # the op count does not depend on the batch: on the CPU it is taken on 8 images (the profiler is slow),
        # elsewhere and when compiled (a new shape would compile again) on the whole batch
        few = images if args.compile or dev.type != "cpu" else first(images, 8)
        gen = torch.Generator(device=dev).manual_seed(1)
        aug(few, gen)  # warm-up (lazy init, compile)
        ops = count_ops(lambda: aug(few, gen))
        aug(images, gen)
        med, low = wall_ms(lambda: aug(images, gen), args.repeats, dev)
        cuda = f"  {ops['cuda_launches']:13d}" if "cuda_launches" in ops else ""
        print(f"{name:20s}  {b:5d}  {ops['top']:7d}  {ops['kernels']:10d}{cuda}  {med:8.2f}  {low:8.2f}", flush=True)

if __name__ == "__main__":
    main()
