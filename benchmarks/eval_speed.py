"""Evaluation speed: the cached-feature linear probe against the paper's SGD probe, on the quickstart's encoders.

    python benchmarks/eval_speed.py --out results/quickstart

Runs suites/quickstart.yaml with `--resume` into --out, with linear_sgd evaluations added (the paper's recipe
with crops and flips, and one without augmentation), so finished pretraining and evaluations are reused and
only what is missing runs. Then it prints, per method, top-1 and wall time of every linear-type evaluation.
Wall time is the record's own wall_time_s: the cached probe's includes extracting whichever splits kNN had
not already extracted; the SGD probe's includes all its encoder passes over augmented images.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from ssl_bench.cli.main import main as cli_main
from ssl_bench.config.suite import read_suite_yaml

ROOT = Path(__file__).resolve().parent.parent
SGD_PROBES = [{"name": "linear_sgd"},  # the paper's recipe, CPU-sized: crops + flips, lrs [0.4, 0.1, 0.02], 20 epochs
              {"name": "linear_sgd", "params": {"crop_scale": [1.0, 1.0], "flip_p": 0.0}}]  # no augmentation


def report(out: Path) -> None:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["protocol"] in ("linear", "linear_sgd") and r["metric"] == "top1"
            and r["status"] == "ok"]
    print(f"\n{'method':<12}{'evaluation':<40}{'top1':>7}{'wall s':>9}")
    for r in sorted(rows, key=lambda r: (r["method"], r["protocol"], -r["eval_params"].get("flip_p", 0.5))):
        p = r["eval_params"]
        aug = "crops + flips" if p.get("flip_p", 0.5) > 0 else "no crop/flip"
        what = "linear (cached features, L-BFGS)" if r["protocol"] == "linear" else \
            f"linear_sgd {p['epochs']} ep, {aug}, lr {r['extra'].get('lr')}"
        print(f"{r['method']:<12}{what:<40}{r['value']:7.1f}{r['wall_time_s']:9.1f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/quickstart")
    p.add_argument("--suite", default=str(ROOT / "suites" / "quickstart.yaml"))
    a = p.parse_args()
    suite = read_suite_yaml(a.suite)
    suite["evaluations"] = suite["evaluations"] + SGD_PROBES
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    augmented = out / "suite_with_linear_sgd.yaml"
    augmented.write_text(yaml.safe_dump(suite, sort_keys=False))
    code = cli_main(["run", str(augmented), "--out", str(out), "--resume"])
    if code in (0, 3):  # 3: finished, some rows failed or collapsed
        report(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
