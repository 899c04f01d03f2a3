"""Pretraining throughput: ssl-bench's engine against a peer-style reference loop, and the model-only ceiling.

    python benchmarks/throughput.py                      # CPU, reference vs engine vs model-only
    python benchmarks/throughput.py --levers             # per-lever table (model step, EMA, data path)
    python benchmarks/throughput.py --device cuda --compile --json gpu.json

Each configuration runs in its own subprocess (so peak memory is its own), rounds are interleaved in a
rotating order, and medians over rounds are reported. Not a test: never collected by pytest.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
from statistics import median

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

CONFIGS = ("reference", "engine", "model_only")


def native_bf16(device: torch.device) -> bool:
    """bf16 autocast pays only with hardware bf16 math (CUDA Ampere+, or AVX512-BF16/AMX CPUs); on an
    AVX2 CPU it is emulated and measured 8x slower than fp32 (README)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def engine_levers(args) -> dict:
    dev = torch.device(args.device)
    amp = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16,
           "auto": torch.bfloat16 if native_bf16(dev) else None}[args.amp]
    # auto = the suite default (channels_last: true): 1.48x on this AVX2 CPU's model step, 1.23x on the H200
    cl = {"on": True, "off": False, "auto": True}[args.channels_last]
    return {"amp_dtype": amp, "channels_last": cl, "concat": args.concat, "compile": args.compile}


def worker(args) -> None:
    import harness

    dev = torch.device(args.device)
    torch.manual_seed(args.seed)
    bundle = harness.load_data() if args.worker != "model_only" else None
    lv = engine_levers(args)
    if args.worker == "reference":
        out = harness.run_reference(bundle, dev, args.batch, args.warmup, args.steps, args.workers, args.seed)
    elif args.worker == "engine":
        out = harness.run_engine(bundle, dev, args.batch, args.warmup, args.steps, args.seed,
                                 data_on_device=not args.data_on_host, **lv)
    else:
        out = harness.run_model_only(dev, args.batch, args.warmup, args.steps, args.seed,
                                     amp_dtype=lv["amp_dtype"], channels_last=lv["channels_last"],
                                     concat=lv["concat"], compile=lv["compile"])
    out["dataset"] = bundle.name if bundle is not None else None
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_rss_child_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # largest worker
    if dev.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    print("RESULT " + json.dumps(out), flush=True)


def run_config(name: str, argv: list[str]) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name] + argv
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def machine(device: str) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def compare(args, argv: list[str]) -> dict:
    runs: dict[str, list[dict]] = {c: [] for c in CONFIGS}
    for r in range(args.rounds):
        order = CONFIGS[r % 3:] + CONFIGS[:r % 3]  # rotate so no config always runs first
        for name in order:
            runs[name].append(run_config(name, argv))
            print(f"  round {r + 1} {name:<10} {runs[name][-1]['images_per_s']:8.1f} img/s", flush=True)
    med = {c: median(x["images_per_s"] for x in runs[c]) for c in CONFIGS}
    per_round = [e["images_per_s"] / ref["images_per_s"] for e, ref in zip(runs["engine"], runs["reference"])]
    summary = {"machine": machine(args.device), "device": args.device, "batch": args.batch, "steps": args.steps,
               "warmup": args.warmup, "rounds": args.rounds, "workers": args.workers,
               "dataset": runs["engine"][0]["dataset"],
               "engine_levers": {k: str(v) for k, v in engine_levers(args).items()},
               "images_per_s": med, "speedup_vs_reference": med["engine"] / med["reference"],
               "speedup_per_round": per_round, "fraction_of_model_only": med["engine"] / med["model_only"],
               "runs": runs}
    print(f"\n{'config':<12}{'img/s (median)':>16}{'range':>22}{'peak RSS MB':>13}{'worker RSS MB':>15}"
          + ("{:>14}".format("peak CUDA MB") if args.device == "cuda" else ""))
    for c in CONFIGS:
        xs = [x["images_per_s"] for x in runs[c]]
        line = (f"{c:<12}{med[c]:16.1f}{f'{min(xs):.1f}-{max(xs):.1f}':>22}"
                f"{max(x['peak_rss_mb'] for x in runs[c]):13.0f}{max(x['peak_rss_child_mb'] for x in runs[c]):15.0f}")
        if args.device == "cuda":
            line += f"{max(x['peak_cuda_mb'] for x in runs[c]):14.0f}"
        print(line)
    print(f"\nengine / reference: {summary['speedup_vs_reference']:.2f}x (per round: "
          f"{', '.join(f'{x:.2f}' for x in per_round)})")
    print(f"engine / model-only ceiling: {100 * summary['fraction_of_model_only']:.0f}%")
    return summary


def parse(argv: list[str]):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=None, help="timed steps per run (cpu 3, cuda 100)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (cpu 1, cuda 10)")
    p.add_argument("--rounds", type=int, default=1, help="interleaved repetitions; medians are reported")
    p.add_argument("--workers", type=int, default=None, help="reference DataLoader workers (default: cores, max 8)")
    p.add_argument("--amp", default="auto", choices=["auto", "none", "bf16", "fp16"])
    p.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--concat", action="store_true", help="BYOL concat_target_views=True (changes BN statistics)")
    p.add_argument("--compile", action="store_true", help="torch.compile the engine and model-only step")
    p.add_argument("--data-on-host", action="store_true", help="cuda: keep the uint8 dataset in pinned host memory")
    p.add_argument("--levers", action="store_true", help="print the per-lever table instead")
    p.add_argument("--lever-batch", type=int, default=None, help="batch of the lever table (cpu 64, cuda 256)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default torch's); use 1 on a CPU shared with other jobs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="fewest steps that still give a number")
    p.add_argument("--json", default=None, help="write the summary here")
    p.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    args.steps = args.steps or (20 if args.quick else 100) if cuda else args.steps or (2 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else ((10 if args.compile else 3) if cuda else 1)
    args.workers = args.workers if args.workers is not None else min(os.cpu_count() or 1, 8)
    args.lever_batch = args.lever_batch or (256 if cuda else 64)
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        return worker(args)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    if args.levers:
        import levers

        summary = levers.main(args)
    else:
        print(f"BYOL resnet18{tuple([16, 32, 64, 128])} 32px batch {args.batch}, {args.warmup} warm-up + "
              f"{args.steps} timed steps, {args.rounds} round(s), device {args.device}", flush=True)
        summary = compare(args, [a for a in argv if a not in ("--levers",)] + ["--steps", str(args.steps),
                                                                               "--warmup", str(args.warmup)])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1, default=str)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
