"""Published rows beside ours: which of them a table shows, and the delta of our runs against them."""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd

from .layouts import Section, row_fields

# Our run matches a published number when all of these agree; epochs pick the closest published run.
MATCH_FIELDS = ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "label_fraction")


def load_reference() -> pd.DataFrame:
    return _reference().copy()


@functools.lru_cache(maxsize=1)
def _reference() -> pd.DataFrame:  # package data: read once per process
    from ssl_bench.published import load_published

    from .layouts import add_target

    pub = add_target(load_published())
    pub["status"] = "ok"
    return pub


def relevant(sec: Section, ours: pd.DataFrame, pub: pd.DataFrame) -> pd.DataFrame:
    """Published rows of the section's setting whose pretraining data and column we also have."""
    cand = sec.select(pub)
    cand = cand[cand["pretrain_dataset"].isin(set(ours["pretrain_dataset"]))]
    if cand.empty:
        return cand
    ours_cols = set(_keys(ours, sec.columns))
    return cand[[k in ours_cols for k in _keys(cand, sec.columns)]]


def widen_rows(sec: Section, ours: pd.DataFrame, shown: pd.DataFrame) -> list[str]:
    """Rows that keep reported rows apart from ours and from each other (backbone, pretraining data)."""
    if sec.rows_given or shown.empty:
        return sec.rows
    both = pd.concat([ours[["method", "backbone", "pretrain_dataset"]], shown[["method", "backbone",
                                                                             "pretrain_dataset"]]])
    extra = [f for f in row_fields(both.assign(epochs=np.nan)) if f not in sec.rows]
    return [f for f in ("method", "backbone", "pretrain_dataset", "epochs") if f in sec.rows or f in extra]


def reported_frame(shown: pd.DataFrame, rows: list[str], columns: list[str]) -> pd.DataFrame:
    """Published rows in the aggregated shape: one number each, no std, n unknown."""
    keys = list(dict.fromkeys(rows + columns + ["epochs"]))
    out = shown[keys].copy()
    dup = out.duplicated(subset=keys)
    if dup.any():
        warnings.warn(f"{int(dup.sum())} published row(s) share a table cell with another; the first is shown "
                      "(add backbone or pretrain_dataset to --rows)", stacklevel=3)
    out = out.assign(mean=shown["value"].astype(float), std=np.nan, n=np.nan, n_failed=0, n_collapsed=0,
                     status="ok", reported=True, source=shown["source"], note=shown["note"],
                     delta=np.nan)[~dup.to_numpy()]
    return out.reset_index(drop=True)


def deltas(agg: pd.DataFrame, records: pd.DataFrame, keys: list[str], pub: pd.DataFrame) -> pd.Series:
    """Per line of `agg`: our mean minus the published number of exactly the same setting (NaN if none).

    A cell matches only when all its records share one setting (MATCH_FIELDS); among published rows of that
    setting, the one with the closest number of epochs (ties: the longer run).
    """
    out = pd.Series(np.nan, index=agg.index)
    if records.empty or pub.empty:
        return out
    settings = records.groupby(keys, dropna=False, sort=False)
    lookup = {}
    for gkey, part in settings:
        setting = part[list(MATCH_FIELDS)].drop_duplicates()
        if len(setting) == 1:
            lookup[_norm(gkey if isinstance(gkey, tuple) else (gkey,))] = (setting.iloc[0], part["epochs"])
    for i, line in agg[keys].iterrows():
        found = lookup.get(_norm(tuple(line)))
        if found is None:
            continue
        setting, epochs = found
        match = pub
        for f in MATCH_FIELDS:
            v = setting[f]
            match = match[match[f].isna()] if _missing(v) else match[match[f] == v]
        if match.empty:
            continue
        ours_ep = pd.to_numeric(epochs, errors="coerce").dropna()
        ep = float(ours_ep.iloc[0]) if ours_ep.nunique() == 1 else np.nan
        gap = (match["epochs"] - ep).abs().fillna(np.inf) if not np.isnan(ep) else pd.Series(0.0, match.index)
        best = match.assign(_gap=gap, _ep=match["epochs"].fillna(-1)).sort_values(["_gap", "_ep"],
                                                                                   ascending=[True, False])
        out[i] = agg.loc[i, "mean"] - best["value"].iloc[0]
    return out


def _keys(df: pd.DataFrame, columns: list[str]) -> list[tuple]:
    return [_norm(tuple(r)) for r in df[columns].itertuples(index=False)] if columns else [()] * len(df)


def _missing(v) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def _norm(t: tuple) -> tuple:
    """Hashable key with every missing value alike (None, NaN, pd.NA) and numbers as floats."""
    out = []
    for v in t:
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            out.append(None)
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out.append(float(v))
        else:
            out.append(v)
    return tuple(out)
