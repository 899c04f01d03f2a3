"""Pretraining throughput: ssl-bench's engine against a peer-style reference loop, and the model-only ceiling.

    python benchmarks/throughput.py                              # tiny config, CPU
    python benchmarks/throughput.py --config cifar-r18 --batch 64
    python benchmarks/throughput.py --config all --device cuda --json gpu.json
    python benchmarks/throughput.py --quick                      # smoke run of every config on the CPU
    python benchmarks/throughput.py --levers                     # per-lever table (tiny config)

Configs (BYOL): tiny = narrow resnet18 at 32 px on Fashion-MNIST (digits when missing); cifar-r18 = full-width
resnet18 (small-image stem) at 32 px on a synthetic in-memory CIFAR-shape set; imagenet-r50 = resnet50 at 224 px
on a generated folder of JPEGs read through ssl-bench's image_folder dataset. Each runner of each config runs in
its own subprocess (so peak memory is its own), rounds are interleaved in a rotating order, and medians over
rounds are reported. Not a test: never collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from statistics import median

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import folder_data  # noqa: E402
from harness import BENCH_CONFIGS, TINY  # noqa: E402
from ssl_bench.engine.device import native_bf16  # noqa: E402
from ssl_bench.errors import UserError  # noqa: E402

RUNNERS = ("reference", "engine", "model_only")
SMOKE = "SMOKE RUN (--quick): checks that every path runs; the numbers are NOT a measurement"


def engine_levers(args) -> dict:
    dev = torch.device(args.device)
    amp = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16,
           "auto": torch.bfloat16 if native_bf16(dev) else None}[args.amp]
    # auto = the suite default (channels_last: true): 1.48x on this AVX2 CPU's model step, 1.23x on the H200
    cl = {"on": True, "off": False, "auto": True}[args.channels_last]
    return {"amp_dtype": amp, "channels_last": cl, "concat": args.concat, "compile": args.compile}


def plan(args, name: str) -> dict:
    """Batch, warm-up and timed steps and view size of config `name`: the options given, else its defaults."""
    cfg, cuda = BENCH_CONFIGS[name], args.device == "cuda"
    mode = "quick" if args.quick else "cuda" if cuda else "cpu"
    warmup = 1 if args.quick or not cuda else max(cfg.warmup_cuda, 10 if args.compile else 0)
    steps = 1 if args.quick else cfg.steps_cuda if cuda else 3
    size = (cfg.quick_size or cfg.size) if args.quick else cfg.size
    return {"batch": args.batch or cfg.batch[mode], "warmup": args.warmup if args.warmup is not None else warmup,
            "steps": args.steps or steps, "size": args.size or size}


def worker(args) -> None:
    import harness

    # pretrain's device_name() calls platform.processor(), which forks `uname -p` once per process: done now,
    # before data and model are loaded, so that fork's RSS is not taken for a DataLoader worker's
    platform.processor()
    dev = torch.device(args.device)
    torch.manual_seed(args.seed)
    cfg = BENCH_CONFIGS[args.configs[0]]
    n = (args.warmup + args.steps) * args.batch
    data = harness.load_config_data(cfg, n) if args.worker != "model_only" else None
    lv = engine_levers(args)
    common = {"cfg": cfg, "size": args.size}
    if args.worker == "reference":
        out = harness.run_reference(data, dev, args.batch, args.warmup, args.steps, args.workers, args.seed,
                                    **common)
    elif args.worker == "engine":
        out = harness.run_engine(data, dev, args.batch, args.warmup, args.steps, args.seed,
                                 data_on_device=not args.data_on_host, workers=args.workers,
                                 prefetch=args.prefetch, **lv, **common)
    else:
        out = harness.run_model_only(dev, args.batch, args.warmup, args.steps, args.seed,
                                     amp_dtype=lv["amp_dtype"], channels_last=lv["channels_last"],
                                     concat=lv["concat"], compile=lv["compile"], **common)
    out["dataset"] = data.name if data is not None else None
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the largest DataLoader worker (forked: counts the pages it shares with its parent), where there are workers
    workers = args.worker == "reference" or (args.worker == "engine" and not data.train.in_memory)
    out["peak_rss_child_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if workers else None
    if dev.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    print("RESULT " + json.dumps(out), flush=True)


def run_runner(name: str, argv: list[str]) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name] + argv
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][7:]) | {"process_wall_s": time.perf_counter() - t}


def machine(device: str) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _peak(runs: list[dict], key: str) -> float | None:
    values = [x[key] for x in runs if x.get(key) is not None]
    return max(values) if values else None


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def compare(args, name: str, argv: list[str]) -> dict:
    """Every runner of config `name`, `args.rounds` interleaved rounds; prints its table, returns its summary."""
    p, cfg = plan(args, name), BENCH_CONFIGS[name]
    width = f"{list(cfg.channels)}" if cfg.channels else ""
    print(f"\n== {name}: BYOL {cfg.backbone}{width} {p['size']} px, batch {p['batch']}, {p['warmup']} warm-up + "
          f"{p['steps']} timed steps, {args.rounds} round(s), device {args.device}", flush=True)
    if cfg.data == "jpeg_folder":  # written once, before any runner, so no runner times the writing
        t = time.perf_counter()
        root = folder_data.jpeg_folder((p["warmup"] + p["steps"]) * p["batch"])
        print(f"  JPEG folder {root} ready ({time.perf_counter() - t:.1f} s)", flush=True)
    argv = argv + ["--config", name] + [x for k in ("batch", "warmup", "steps", "size")
                                        for x in (f"--{k}", str(p[k]))] + ["--workers", str(args.workers)]
    runs: dict[str, list[dict]] = {c: [] for c in RUNNERS}
    for r in range(args.rounds):
        for runner in RUNNERS[r % 3:] + RUNNERS[:r % 3]:  # rotate so no runner always runs first
            runs[runner].append(run_runner(runner, argv))
            out = runs[runner][-1]
            print(f"  round {r + 1} {runner:<10} {out['images_per_s']:8.1f} img/s  "
                  f"(process {out['process_wall_s']:.0f} s)", flush=True)
    med = {c: median(x["images_per_s"] for x in runs[c]) for c in RUNNERS}
    per_round = [e["images_per_s"] / ref["images_per_s"] for e, ref in zip(runs["engine"], runs["reference"])]
    eng = runs["engine"][0]
    summary = {"config": name, **p, "device": args.device, "rounds": args.rounds, "workers": args.workers,
               "quick": args.quick, "dataset": eng["dataset"], "engine_clock": eng.get("clock"),
               "engine_prefetch": eng.get("prefetch"),
               "engine_levers": {k: str(v) for k, v in engine_levers(args).items()},
               "images_per_s": med, "speedup_vs_reference": med["engine"] / med["reference"],
               "speedup_per_round": per_round, "fraction_of_model_only": med["engine"] / med["model_only"],
               "peak_rss_mb": {c: _peak(runs[c], "peak_rss_mb") for c in RUNNERS},
               "peak_rss_worker_mb": {c: _peak(runs[c], "peak_rss_child_mb") for c in RUNNERS}, "runs": runs}
    cuda = args.device == "cuda"
    if cuda:
        summary["peak_cuda_mb"] = {c: _peak(runs[c], "peak_cuda_mb") for c in RUNNERS}
    print(f"  data: {eng['dataset']}; engine clock: {eng.get('clock')}, prefetch: {eng.get('prefetch')}")
    print(f"\n{'runner':<12}{'img/s (median)':>16}{'range':>22}{'peak RSS MB':>13}{'worker RSS MB':>15}"
          + ("{:>14}".format("peak CUDA MB") if cuda else ""))
    for c in RUNNERS:
        xs = [x["images_per_s"] for x in runs[c]]
        line = (f"{c:<12}{med[c]:16.1f}{f'{min(xs):.1f}-{max(xs):.1f}':>22}"
                f"{_mb(summary['peak_rss_mb'][c]):>13}{_mb(summary['peak_rss_worker_mb'][c]):>15}")
        print(line + (f"{_mb(summary['peak_cuda_mb'][c]):>14}" if cuda else ""))
    print(f"engine / reference: {summary['speedup_vs_reference']:.2f}x (per round: "
          f"{', '.join(f'{x:.2f}' for x in per_round)}); engine / model-only: "
          f"{100 * summary['fraction_of_model_only']:.0f}%", flush=True)
    return summary


def overview(summaries: list[dict], quick: bool) -> None:
    """One line per config: the two ratios and peak memory (reference / engine / model-only)."""
    cuda = any("peak_cuda_mb" in s for s in summaries)
    print(f"\n{SMOKE}" if quick else "")
    print(f"{'config':<14}{'batch':>6}{'steps':>6}{'engine/ref':>12}{'engine/model-only':>19}"
          f"{'peak RSS MB ref/eng/m-o':>26}" + ("{:>27}".format("peak CUDA MB ref/eng/m-o") if cuda else ""))
    for s in summaries:
        rss = "/".join(f"{s['peak_rss_mb'][c]:.0f}" for c in RUNNERS)
        line = (f"{s['config']:<14}{s['batch']:>6}{s['steps']:>6}{s['speedup_vs_reference']:11.2f}x"
                f"{100 * s['fraction_of_model_only']:18.0f}%{rss:>26}")
        if cuda:
            line += "{:>27}".format("/".join(f"{s['peak_cuda_mb'][c]:.0f}" for c in RUNNERS))
        print(line)


def resolve_configs(value: str | None, quick: bool) -> list[str]:
    """--config: one name, a comma-separated list, or all; default tiny (every config with --quick)."""
    if value is None:
        return list(BENCH_CONFIGS) if quick else [TINY.name]
    names = list(BENCH_CONFIGS) if value == "all" else [v.strip() for v in value.split(",")]
    bad = [n for n in names if n not in BENCH_CONFIGS]
    if bad or not names:
        raise UserError(f"--config: bad value {value!r}; allowed: {', '.join(BENCH_CONFIGS)}, all, or a "
                        "comma-separated list of them")
    return list(dict.fromkeys(names))


def _check_counts(args) -> None:
    for field, value, low in (("--batch", args.batch, 1), ("--steps", args.steps, 1), ("--size", args.size, 8),
                              ("--warmup", args.warmup, 1), ("--rounds", args.rounds, 1),
                              ("--workers", args.workers, 0), ("--threads", args.threads, 1)):
        if value is not None and value < low:  # warm-up >= 1: the reference's clock starts at its end
            raise UserError(f"{field}: bad value {value}; allowed: an integer >= {low}")


def parse(argv: list[str]):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help=f"{', '.join(BENCH_CONFIGS)}, all, or a comma-separated list "
                                                  "(default tiny; --quick: all)")
    p.add_argument("--quick", action="store_true", help="smoke run: every config, tiny batches, 1 warm-up + 1 "
                                                        "timed step; checks the paths, measures nothing")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch", type=int, default=None, help="batch of every config (default: the config's)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per run (cpu 3, cuda 100)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (cpu 1, cuda 3; imagenet-r50 10)")
    p.add_argument("--size", type=int, default=None, help="view side in px (default: the config's)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved repetitions; medians are reported")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers of the reference, and of the engine on a folder (default: cores, max 8)")
    p.add_argument("--amp", default="auto", choices=["auto", "none", "bf16", "fp16"])
    p.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--prefetch", default="auto", choices=["auto", "on", "off"],
                   help="the engine's TrainSettings.prefetch (auto: on for cuda, off on the cpu)")
    p.add_argument("--concat", action="store_true", help="BYOL concat_target_views=True (changes BN statistics)")
    p.add_argument("--compile", action="store_true", help="torch.compile the engine and model-only step")
    p.add_argument("--data-on-host", action="store_true", help="cuda: keep the uint8 dataset in pinned host memory")
    p.add_argument("--levers", action="store_true", help="print the per-lever table instead (tiny config)")
    p.add_argument("--lever-batch", type=int, default=None, help="batch of the lever table (cpu 64, cuda 256)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default torch's; --quick: 1); use 1 on a CPU shared with other jobs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the summaries here")
    p.add_argument("--worker", choices=RUNNERS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    _check_counts(args)
    args.configs = resolve_configs(args.config, args.quick and not args.levers)
    if args.quick and args.threads is None:
        args.threads = 1  # a smoke run must not crawl on a shared CPU (2 OpenMP threads there: 3-17x slower)
    args.workers = args.workers if args.workers is not None else min(os.cpu_count() or 1, 8)
    args.lever_batch = args.lever_batch or (256 if args.device == "cuda" else 64)
    if args.levers:
        if args.configs != [TINY.name]:
            raise UserError(f"--levers: bad --config {args.config!r}; allowed: tiny (the lever table's model)")
        args.batch, args.warmup, args.steps = (plan(args, TINY.name)[k] for k in ("batch", "warmup", "steps"))
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse(argv)
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        return worker(args)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    t0 = time.perf_counter()
    if args.levers:
        import levers

        result = levers.main(args)
    else:
        if args.quick:
            print(SMOKE, flush=True)
        base = [a for a in argv if a != "--levers"]
        summaries = [compare(args, name, base) for name in args.configs]
        overview(summaries, args.quick)
        result = {"machine": machine(args.device), "quick": args.quick, "configs": {s["config"]: s for s in summaries}}
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
