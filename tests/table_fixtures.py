"""Records, result folders and a markdown-table parser shared by the table tests (one fixture suite: BYOL,
SimCLR, MoCo v2 and random with known values, collapses, failures, semi-supervised and transfer rows)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from ssl_bench.evaluations.linear import LinearEvaluation
from ssl_bench.report.tables import load_results

# method -> values by seed: byol wins top-1; simclr's seeds 0 and 1 (71, 71.5 against byol's 70, 72) are not told
# apart from it by a paired t-test (tied); moco_v2's (10, 11, 12 points under byol on each seed) are.
LINEAR_TOP1 = {"byol": [70.0, 72.0, 74.0], "simclr": [71.0, 71.5], "moco_v2": [60.0, 61.0, 62.0]}
LINEAR_TOP5 = {"byol": [90.0, 91.0, 92.0], "simclr": [92.0]}  # moco_v2 has no top-5: a dash, never 0
EPOCHS = {"byol": 1000, "simclr": 1000, "moco_v2": 200, "random": 0}


def rec(method, protocol, metric, value, seed, status="ok", eval_dataset="imagenet", label_fraction=None, **kw):
    r = {"suite": "fixture", "run_id": f"{method}-s{seed}", "method": method, "backbone": "resnet50",
         "pretrain_dataset": "imagenet", "protocol": protocol, "eval_dataset": eval_dataset, "metric": metric,
         "value": value, "seed": seed, "status": status, "error": None if status == "ok" else "boom",
         "label_fraction": label_fraction, "config_hash": "h", "method_params": {}, "eval_params": {},
         "epochs": EPOCHS[method], "versions": {"torch": "x"}, "wall_time_s": 1.0, "pretrain_time_s": 2.0,
         "timestamp": "2025-01-01T00:00:00+00:00", "extra": {},
         "eval_key": f"{protocol}:{eval_dataset}:{label_fraction}"}
    r.update(kw)
    return r


def fixture_records() -> list[dict]:
    recs = []
    for table, metric in ((LINEAR_TOP1, "top1"), (LINEAR_TOP5, "top5")):
        for m, vals in table.items():
            recs += [rec(m, "linear", metric, v, s) for s, v in enumerate(vals)]
    # kNN: byol seed 2 collapsed (its low value must not enter the mean); random collapsed everywhere.
    recs += [rec("byol", "knn", "top1", 60.0, 0), rec("byol", "knn", "top1", 64.0, 1),
             rec("byol", "knn", "top1", 3.0, 2, status="collapsed"), rec("simclr", "knn", "top1", 61.0, 0),
             rec("random", "knn", "top1", 9.5, 0, status="collapsed")]
    # random's linear probe failed before reporting any metric: it must show as failed in top-1 and top-5.
    recs.append(rec("random", "linear", None, None, 0, status="failed"))
    for s, (a, b) in enumerate([(50.0, 66.0), (52.0, 70.0)]):
        recs += [rec("byol", "semi_supervised", "top1", a, s, label_fraction=0.01),
                 rec("byol", "semi_supervised", "top1", b, s, label_fraction=0.1)]
    # the recipe the transfer evaluation records with its defaults (BYOL Table 3's L-BFGS protocol)
    lbfgs = {"recipe": LinearEvaluation().recipe({})}
    recs += [rec("byol", "transfer_linear", "top1", 75.0, 0, eval_dataset="food101", **lbfgs),
             rec("byol", "transfer_linear", "top1", 55.0, 0, eval_dataset="fgvc_aircraft", **lbfgs),
             rec("byol", "transfer_linear", "mean_per_class", 58.0, 0, eval_dataset="fgvc_aircraft", **lbfgs),
             rec("simclr", "transfer_linear", "top1", 70.0, 0, eval_dataset="food101", **lbfgs)]
    return recs


def write_results(folder, records, torn_tail: str = "") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records) + torn_tail
    (folder / "results.jsonl").write_text(text)
    return str(folder)


@pytest.fixture
def out(tmp_path) -> str:
    return write_results(tmp_path / "out", fixture_records())


@pytest.fixture
def df(out) -> pd.DataFrame:
    return load_results([out])


def md_table(text: str, title: str | None = None) -> dict[str, dict[str, str]]:
    """Parse the markdown table under `title` (or the first one) into {first column: {header: cell}}."""
    lines = text.splitlines()
    start = lines.index(f"### {title}") if title else 0
    rows = []
    for line in lines[start:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split(" | ")])
        elif rows:
            break
    header, body = rows[0], rows[2:]
    return {r[0]: dict(zip(header, r)) for r in body}
