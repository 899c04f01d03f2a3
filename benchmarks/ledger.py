"""The results ledger at scale (issue 29 items 5-6): what one batch write, one done-check, `ssl-bench status` and
`ssl-bench table` (markdown and --ci) cost at 1k, 10k and 100k result rows, all measured in one run.

Each size gets its own generated output folder: rows shaped like real ones (the fields a kNN / linear row of
a run carries, about 1.2 KB of JSON each), 2 rows per (run, evaluation) batch, 4 evaluations per run, runs
over 25 methods x 5 backbones x as many seeds as the size needs, written as batch files the way the ledger
writes them, plus the matrix.json `status` reads. Then, on that folder:
- append: `ResultsStore.append` of one new 2-row batch (a new evaluation of a new run), mean over --appends;
- done-check: `ResultsStore.done` of one run's 4 evaluations (what a worker asks before claiming), per batch;
- status: `ssl-bench status` in a subprocess (wall, CPU, peak RSS): it reads every batch of the matrix;
- view: the first build of results.jsonl from every batch, and its refresh after the appends landed (what the
  end of a worker's pass does);
- table: `ssl-bench table OUT` and `ssl-bench table OUT --ci` in subprocesses (wall, CPU, peak RSS), on the
  fresh view;
- before: the previous ledger's append (read every line, judge batches, rewrite and fsync the whole file
  under the lock), re-enacted on the same rows for comparison (--before-appends of them).

    python benchmarks/ledger.py                 # 1k, 10k, 100k rows
    python benchmarks/ledger.py --quick         # 100 and 300 rows, a few appends (the smoke test runs this)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ssl_bench.jsonl import dumps, read_jsonl
from ssl_bench.registry import load_plugins
from ssl_bench.run.batches import FORMAT, batch_path
from ssl_bench.run.ledger import ResultsStore
from ssl_bench.run.legacy import LEDGER_VERSION, MARKER, last_batches

EVALS = [("knn", "4a1a739c"), ("linear", "c9481ac1"), ("linear_sgd", "0f0f0f0f"), ("online_linear", "1e1e1e1e")]
METHODS = [f"method{i:02d}" for i in range(25)]
BACKBONES = [f"r18-w{i}" for i in range(5)]


def row(run_id: str, method: str, backbone: str, seed: int, key: str, metric: str, rng: random.Random) -> dict:
    """A result row with a real row's fields (recorder.RunRecorder) and sizes."""
    name = key.split(":")[0]
    return {"suite": "scale", "run_id": run_id, "config_hash": run_id[-12:], "setting_hash": "9a418d53e55f",
            "batch_size": 256, "method": method, "method_name": "byol", "backbone": backbone,
            "pretrain_dataset": "cifar10", "seed": seed, "epochs": 100, "budget_kind": "epochs", "budget_value": 100,
            "method_params": {"proj_hidden_dim": 4096, "proj_dim": 256, "pred_hidden_dim": 4096, "tau_base": 0.99},
            "optim": {"optimizer": "lars", "base_lr": 0.3, "weight_decay": 1e-06, "momentum": 0.9,
                      "warmup_epochs": 10, "lars_eta": 0.001, "exclude_bias_and_norm": True},
            "augment": [], "versions": {"ssl_bench": "0.1.0", "torch": "2.14.1", "torchvision": "0.29.1",
                                        "timm": "1.0.31", "sklearn": "1.9.1", "python": "3.11.7"},
            "image_size": 32, "split_info": {"split_seed": 0, "sizes": {"train": 45000, "val": 5000, "test": 10000}},
            "pretrain_time_s": 812.5, "compute_images_seen": 4500000, "compute_steps": 17578,
            "compute_wall_s": 812.5, "compute_flops_per_image": 1.1e9, "compute_device": "NVIDIA H100",
            "compute_device_count": 1, "collapse_score": 0.61, "protocol": name, "eval_dataset": "cifar10",
            "metric": metric, "value": round(rng.uniform(40, 95), 4), "status": "ok", "error": None,
            "label_fraction": None, "eval_key": key, "evaluation": name,
            "eval_params": {"k": 200, "temperature": 0.1}, "wall_time_s": 12.5,
            "timestamp": "2026-12-02T19:28:44+00:00", "extra": {"n_train": 45000, "n_test": 10000,
                                                                "uses_frozen_encoder": True}}


def build_folder(out: Path, n_rows: int, seed: int = 0) -> dict:
    """An output folder holding about n_rows rows in batch files (plain writes: generating is not timed)."""
    rng = random.Random(seed)
    out.mkdir(parents=True)
    (out / MARKER).write_text(json.dumps({"created_by": "ssl-bench", "suite": "scale", "ledger": LEDGER_VERSION}))
    per_run = 2 * len(EVALS)
    runs, sizes = [], []
    for i in range(max(1, n_rows // per_run)):
        method, backbone = METHODS[i % len(METHODS)], BACKBONES[(i // len(METHODS)) % len(BACKBONES)]
        seed_i = i // (len(METHODS) * len(BACKBONES))
        run_id = f"{method}-{backbone}-cifar10-s{seed_i}-{i:08x}"
        runs.append({"run_id": run_id, "method": method, "backbone": backbone, "dataset": "cifar10",
                     "seed": seed_i, "epochs": 100, "budget": None})
        for name, h in EVALS:
            key = f"{name}:{h}"
            rows = [row(run_id, method, backbone, seed_i, key, m, rng) for m in ("top1", "top5")]
            _write_plain(out, run_id, key, rows)
            sizes += [len(dumps(r)) for r in rows]
    matrix = {"suite": "scale", "suite_sha256": "", "evaluations": [f"{n}:{h}" for n, h in EVALS], "runs": runs}
    (out / "matrix.json").write_text(json.dumps(matrix))
    return {"runs": runs, "rows": len(sizes), "row_bytes": sum(sizes) / len(sizes)}


def _write_plain(out: Path, run_id: str, key: str, rows: list[dict]) -> None:
    batch = f"b{abs(hash((run_id, key))) % 10 ** 12:012d}"
    path = batch_path(out, run_id, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{**r, "batch": batch, "batch_rows": len(rows)} for r in rows]
    path.write_text(json.dumps({"format": FORMAT, "run_id": run_id, "eval_key": key, "batch": batch, "rows": rows}))


def time_appends(out: Path, n: int) -> float:
    """Mean seconds of one 2-row batch append (new runs: nothing to skip)."""
    store, rng, took = ResultsStore(out), random.Random(1), []
    for i in range(n):
        run_id = f"appended-{i:06d}"
        rows = [row(run_id, "byol", "r18", 0, "knn:4a1a739c", m, rng) for m in ("top1", "top5")]
        t0 = time.perf_counter()
        store.append(rows)
        took.append(time.perf_counter() - t0)
    return sum(took) / len(took)


def time_done_checks(out: Path, runs: list[dict], n: int) -> float:
    """Mean seconds of the done-check per batch (one run's 4 evaluations at a time)."""
    store, rng = ResultsStore(out), random.Random(2)
    keys = [f"{name}:{h}" for name, h in EVALS]
    picked = [rng.choice(runs)["run_id"] for _ in range(n)]
    t0 = time.perf_counter()
    for run_id in picked:
        assert store.done(run_id, keys) == set(keys)
    return (time.perf_counter() - t0) / (n * len(keys))


def time_before_append(out: Path, n: int) -> float:
    """The previous ledger's append on these rows: every append read, judged and rewrote results.jsonl."""
    path, took = out / "results.jsonl", []
    for i in range(n):
        t0 = time.perf_counter()
        rows, _ = read_jsonl(path)
        last_batches(rows)  # judging every key's batch, as complete_batches did
        tmp = path.with_name(f"results.jsonl.tmp{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(dumps(r) + "\n" for r in rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        took.append(time.perf_counter() - t0)
    return sum(took) / len(took)


# The child reports its own peak RSS (VmHWM of its memory after exec): the rusage of a child counts the parent's
# pages it shared until exec, so `wait4` would report this (large) process's peak instead.
CHILD = ("import atexit, sys\n"
         "atexit.register(lambda: sys.stderr.write('VmHWM ' + open('/proc/self/status').read()"
         ".split('VmHWM:')[1].split()[0] + '\\n'))\n"
         "from ssl_bench.cli.main import main\n"
         "sys.exit(main(sys.argv[1:]))\n")


def run_cli(*args: str) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS in MB, exit code) of `ssl-bench ARGS` in its own process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code:
        print(err[-2000:], file=sys.stderr)
    peaks = [int(line.split()[1]) for line in err.splitlines() if line.startswith("VmHWM ")]
    return wall, usage.ru_utime + usage.ru_stime, (peaks[-1] / 1024 if peaks else float("nan")), code


def measure(size: int, root: Path, appends: int, checks: int, before: int) -> dict:
    out = root / f"rows{size}"
    t0 = time.perf_counter()
    info = build_folder(out, size)
    made = time.perf_counter() - t0
    t0 = time.perf_counter()
    ResultsStore(out).refresh_view()
    rebuild = time.perf_counter() - t0
    res = {"rows": info["rows"], "row_bytes": info["row_bytes"], "batches": info["rows"] // 2, "made_s": made,
           "rebuild_s": rebuild, "done_ms": 1e3 * time_done_checks(out, info["runs"], checks)}
    res["before_ms"] = 1e3 * time_before_append(out, before) if before else None
    res["append_ms"] = 1e3 * time_appends(out, appends)
    t0 = time.perf_counter()
    ResultsStore(out).refresh_view()  # what the end of a worker's pass does after its last landing
    res["refresh_s"] = time.perf_counter() - t0
    res["status"] = run_cli("status", str(out))
    res["table"] = run_cli("table", str(out))
    res["table_ci"] = run_cli("table", str(out), "--ci")
    shutil.rmtree(out)
    return res


def render(results: list[dict]) -> str:
    head = ("| rows (batch files) | append, ms per batch | done-check, ms per batch | before: append rewriting the "
            "file, ms | `status`: s wall / s CPU (peak MB) | `table` | `table --ci` | view: first build / refresh "
            "after the appends, s |")
    lines = [head, "|" + "---|" * 8]
    for r in results:
        cli = [f"{w:.1f} / {u:.1f} ({m:.0f})" + ("" if c == 0 else f" exit {c}") for w, u, m, c in
               (r["status"], r["table"], r["table_ci"])]
        before = f"{r['before_ms']:.0f}" if r["before_ms"] is not None else "-"
        lines.append(f"| {r['rows']:,} ({r['batches']:,}) | {r['append_ms']:.2f} | {r['done_ms']:.3f} | {before} | "
                     f"{' | '.join(cli)} | {r['rebuild_s']:.1f} / {r['refresh_s']:.1f} |")
    first, last = results[0], results[-1]
    lines.append(f"\nrows of {first['row_bytes']:.0f} bytes on average; {first['rows']:,} -> {last['rows']:,} rows: "
                 f"append x{last['append_ms'] / first['append_ms']:.2f}, done-check "
                 f"x{last['done_ms'] / first['done_ms']:.2f}")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000], help="result rows per folder")
    p.add_argument("--appends", type=int, default=50, help="batch appends timed per size")
    p.add_argument("--checks", type=int, default=200, help="done-checks (of one run each) timed per size")
    p.add_argument("--before-appends", type=int, default=3, help="appends of the previous ledger timed per size")
    p.add_argument("--quick", action="store_true", help="100 and 300 rows, a few of each: a smoke run")
    p.add_argument("--dir", help="where to build the folders (default: a temporary folder)")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.appends, args.checks, args.before_appends = [100, 300], 3, 5, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    load_plugins()  # judging a batch looks up its evaluation's protocols: import the plugins before any clock
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = []
        for size in args.sizes:
            results.append(measure(size, Path(tmp), args.appends, args.checks, args.before_appends))
            print(f"{size} rows done", file=sys.stderr, flush=True)
    print(render(results))
    print(f"(peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
