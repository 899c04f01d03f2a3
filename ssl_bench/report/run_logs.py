"""The training logs of a results folder as one frame (OUT/runs/*/metrics.jsonl or .csv), named as the tables
name runs: what the training-curve plots and the accuracy-against-compute curves both read."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ssl_bench.engine.metrics_log import MetricsLog


def series_name(df: pd.DataFrame) -> pd.Series:
    """Method, plus backbone / pretraining data when the folder holds several."""
    name = df["method"].astype(str)
    for f in ("backbone", "pretrain_dataset"):
        if df[f].nunique() > 1:
            name = name + " / " + df[f].astype(str)
    return name


def run_logs(out_dir: str | Path, df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-epoch rows of every OUT/runs/*/metrics.{jsonl,csv}, with the run's method (run.json or results)."""
    names = {}
    if df is not None and "run_id" in df:
        named = df.dropna(subset=["run_id"]).drop_duplicates("run_id").set_index("run_id")
        names = dict(zip(named.index, series_name(named.reset_index())))
    frames = []
    for run_dir in sorted(Path(out_dir, "runs").glob("*")):
        fmt = "jsonl" if (run_dir / "metrics.jsonl").exists() else "csv" if (run_dir / "metrics.csv").exists() \
            else None
        if fmt is None:
            continue
        rows = MetricsLog(run_dir, fmt).rows()
        if not rows:
            continue
        name = names.get(run_dir.name) or _method_from_run_json(run_dir)
        frames.append(pd.DataFrame(rows).assign(run=run_dir.name, series=name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _method_from_run_json(run_dir: Path) -> str:
    try:
        return str(json.loads((run_dir / "run.json").read_text())["config"]["method"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return run_dir.name
