"""Keep configurations apart: rows of one method label trained or evaluated differently never share a cell.

Two suites (or one suite edited between --resume calls) can give the same label, epochs and seed to different
hyperparameters. Averaging them would report a number nobody measured, so such labels are split into one row
per configuration, named `label [abc123]` after a short hash of what differs, with a warning.
"""
from __future__ import annotations

import hashlib
import json
import warnings

import pandas as pd

from ssl_bench.report.tables.rows import INVALID

# What makes two records of one label different experiments (besides the seed).
TRAIN_FIELDS = ("setting_hash", "method_params", "optim", "augment", "epochs", "backbone", "pretrain_dataset")
CELL_FIELDS = ("method", "backbone", "pretrain_dataset", "epochs", "protocol", "eval_dataset", "metric",
               "label_fraction")


def _signature(rec: pd.Series) -> str:
    if isinstance(rec.get("setting_hash"), str):  # written by runs since the config hash left the seed out
        train = rec["setting_hash"]
    else:
        train = json.dumps([rec.get(f) for f in TRAIN_FIELDS[1:]], sort_keys=True, default=str)
    key = str(rec.get("eval_key") or "")
    eval_part = key.split(":", 1)[1] if ":" in key else key
    return hashlib.sha256(f"{train}|{eval_part}".encode()).hexdigest()[:6]


def _signatures(df: pd.DataFrame) -> pd.Series:
    """`_signature` of each record, hashing each distinct (setting, evaluation) once: per-row calls took half a
    minute at 100k rows."""
    if "setting_hash" not in df or not df["setting_hash"].map(lambda v: isinstance(v, str)).all():
        return df.apply(_signature, axis=1)  # records of runs older than setting_hash: the slow, general path
    key = df["eval_key"].fillna("").astype(str) if "eval_key" in df else pd.Series("", index=df.index)
    joined = df["setting_hash"] + "|" + key.str.split(":", n=1).str[-1]
    return joined.map({u: hashlib.sha256(u.encode()).hexdigest()[:6] for u in joined.unique()})


def separate_configurations(df: pd.DataFrame) -> pd.DataFrame:
    """Relabel `method` as `method [sig]` for labels whose cells would mix configurations."""
    ours = df["run_id"].notna() if "run_id" in df else pd.Series(False, index=df.index)
    ours &= df["status"] != INVALID  # its fields are not to be trusted (cut, or dropped): it splits nothing
    if not ours.any():
        return df
    sig = _signatures(df[ours])
    cells = [c for c in CELL_FIELDS if c in df]
    per_cell = df.loc[ours, cells].astype(str).assign(sig=sig)
    mixed = per_cell.groupby(cells, sort=False, dropna=False)["sig"].transform("nunique") > 1
    labels = sorted(set(df.loc[ours, "method"][mixed.to_numpy()]))
    if not labels:
        return df
    df = df.copy()
    split = ours & df["method"].isin(labels)
    df.loc[split, "method"] = df.loc[split, "method"].astype(str) + " [" + sig[split[ours]].astype(str) + "]"
    warnings.warn(f"method label(s) {', '.join(map(str, labels))} name different configurations with the same "
                  "epochs; shown as separate rows `label [config]` instead of being averaged", stacklevel=3)
    return df


def separate_datasets(df: pd.DataFrame) -> pd.DataFrame:
    """Rows pretrained on folders that share a label (`imagenet`) but held different files (their
    `dataset_manifest` ids differ) become `label [manifest]` datasets, with a warning: two folders of one name
    are never averaged, nor compared with the published rows of that name."""
    if "dataset_manifest" not in df or df["dataset_manifest"].isna().all():
        return df
    have = df[df["dataset_manifest"].notna()]
    counts = have.groupby("pretrain_dataset")["dataset_manifest"].nunique()
    names = sorted(counts[counts > 1].index)
    if not names:
        return df
    df = df.copy()
    split = df["pretrain_dataset"].isin(names) & df["dataset_manifest"].notna()
    own = split & (df["eval_dataset"] == df["pretrain_dataset"])
    tagged = df.loc[split, "pretrain_dataset"].astype(str) + " [" + df.loc[split, "dataset_manifest"].astype(str).str[:6] + "]"
    df.loc[own, "eval_dataset"] = tagged[own[split]]
    df.loc[split, "pretrain_dataset"] = tagged
    warnings.warn(f"dataset(s) {', '.join(map(str, names))} name folders with different files (manifests differ); "
                  "shown as separate datasets `name [manifest]`, compared with no published row", stacklevel=3)
    return df
