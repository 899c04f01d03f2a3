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


def separate_configurations(df: pd.DataFrame) -> pd.DataFrame:
    """Relabel `method` as `method [sig]` for labels whose cells would mix configurations."""
    ours = df["run_id"].notna() if "run_id" in df else pd.Series(False, index=df.index)
    ours &= df["status"] != INVALID  # its fields are not to be trusted (cut, or dropped): it splits nothing
    if not ours.any():
        return df
    sig = df[ours].apply(_signature, axis=1)
    cells = [c for c in CELL_FIELDS if c in df]
    keyed = df.loc[ours, cells].apply(lambda r: "\x1f".join(map(str, r)), axis=1)
    per_cell = pd.DataFrame({"cell": keyed, "sig": sig, "method": df.loc[ours, "method"]})
    mixed = per_cell.groupby("cell")["sig"].nunique()
    labels = sorted(set(per_cell.loc[per_cell["cell"].isin(mixed[mixed > 1].index), "method"]))
    if not labels:
        return df
    df = df.copy()
    split = ours & df["method"].isin(labels)
    df.loc[split, "method"] = df.loc[split, "method"].astype(str) + " [" + sig[split[ours]].astype(str) + "]"
    warnings.warn(f"method label(s) {', '.join(map(str, labels))} name different configurations with the same "
                  "epochs; shown as separate rows `label [config]` instead of being averaged", stacklevel=3)
    return df
