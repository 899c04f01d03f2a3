"""Published reference numbers (papers, other projects) as data, loaded into the record vocabulary.

Installed as `ssl_bench.published`; the CSV files beside this module are package data (see README.md).
"""
from __future__ import annotations

import io
from importlib import resources

import pandas as pd

COLUMNS = ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "label_fraction",
           "value", "epochs", "source", "note")
REQUIRED = ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "value", "source")
DATASETS = {"imagenet", "cifar10", "cifar100", "food101", "birdsnap", "sun397", "stanford_cars", "fgvc_aircraft",
            "voc2007", "dtd", "oxford_iiit_pet", "caltech101", "flowers102"}
PROTOCOLS = {"linear", "semi_supervised", "transfer_linear", "transfer_finetune", "knn"}
METRICS = {"top1", "top5", "mean_per_class", "map11"}


def files() -> list[str]:
    return sorted(p.name for p in resources.files(__name__).iterdir() if p.name.endswith(".csv"))


def load_published() -> pd.DataFrame:
    """Every published row, one per number, with a `file` column naming the CSV it came from."""
    frames = []
    for name in files():
        text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
        frame = pd.read_csv(io.StringIO(text), dtype={"note": object, "source": object})
        check(frame, name)
        frames.append(frame.assign(file=name))
    df = pd.concat(frames, ignore_index=True)
    df["label_fraction"] = df["label_fraction"].astype(float)
    df["value"] = df["value"].astype(float)
    df["epochs"] = df["epochs"].astype(float)
    df["note"] = df["note"].astype(object).where(df["note"].notna(), "")
    return df


def check(frame: pd.DataFrame, name: str) -> None:
    """Fail loudly on a malformed data file: wrong columns, names outside the record vocabulary, bad values."""
    if tuple(frame.columns) != COLUMNS:
        raise ValueError(f"{name}: columns {list(frame.columns)}; expected {list(COLUMNS)}")
    for col in REQUIRED:
        if frame[col].isna().any():
            raise ValueError(f"{name}: empty {col} on line(s) {_lines(frame[col].isna())}")
    for col, allowed in (("pretrain_dataset", DATASETS), ("eval_dataset", DATASETS), ("protocol", PROTOCOLS),
                         ("metric", METRICS)):
        bad = ~frame[col].isin(allowed)
        if bad.any():
            raise ValueError(f"{name}: {col} {sorted(set(frame[col][bad]))} on line(s) {_lines(bad)}; "
                             f"allowed: {sorted(allowed)}")
    if not frame["value"].between(0, 100).all():
        raise ValueError(f"{name}: value outside 0-100 on line(s) {_lines(~frame['value'].between(0, 100))}")
    semi = frame["protocol"] == "semi_supervised"
    if frame.loc[semi, "label_fraction"].isna().any() or frame.loc[~semi, "label_fraction"].notna().any():
        raise ValueError(f"{name}: label_fraction must be set for semi_supervised rows and only for them")
    key = ["method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "label_fraction", "epochs"]
    dup = frame.duplicated(subset=key, keep=False)
    if dup.any():
        raise ValueError(f"{name}: the same setting appears twice on line(s) {_lines(dup)}")


def _lines(mask: pd.Series) -> str:
    return ", ".join(str(i + 2) for i in mask[mask].index[:5])  # +2: header line, 1-based
