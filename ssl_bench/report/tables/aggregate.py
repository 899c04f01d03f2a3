"""Mean +- std over seeds per table cell (with each seed's value and evidence), and the best / tied marks per
column (tied: a paired test does not tell it from the best)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ssl_bench.errors import UserError
from ssl_bench.report.tables.rows import INVALID
from ssl_bench.report.tables.uncertainty import Uncertainty, evidence_refs, samples_of, test_counts
from ssl_bench.report.tables.vocab import SETTING_FIELDS, is_missing

STAT_COLUMNS = ("mean", "std", "n", "n_failed", "n_collapsed", "n_invalid", "status")
NOT_KEYS = {"value", "error", "extra", "versions", "method_params", "eval_params", "optim", "augment",
            "split_info", "timestamp", "wall_time_s", "pretrain_time_s"}


def _scalar_column(df: pd.DataFrame, col: str) -> bool:
    if col in NOT_KEYS:
        return False
    values = df[col]  # only an object column can hold a dict or a list
    return values.dtype != object or not any(isinstance(v, (dict, list)) for v in values.to_numpy())


def check_fields(df: pd.DataFrame, fields: list[str], option: str) -> None:
    """Row / column fields must be record fields holding plain values (not dicts such as extra). Only the asked
    fields are looked at (the list of allowed ones is made for the error alone: at 100k rows it cost seconds)."""
    for f in fields:
        if f not in df.columns or not _scalar_column(df, f):
            allowed = [c for c in df.columns if _scalar_column(df, c)]
            raise UserError(f"{option}: unknown field '{f}'; allowed: {', '.join(allowed)}")


def aggregate(df: pd.DataFrame, rows: list[str], columns: list[str]) -> pd.DataFrame:
    """One line per (rows + columns) group: mean, sample std (ddof=1, NaN for n=1) and n over the ok seeds.

    Records whose status is failed, collapsed or invalid (or whose value is missing) never enter the mean; they
    are counted in n_failed / n_collapsed / n_invalid, and `status` says which when no seed is ok.
    """
    keys = list(rows) + list(columns)
    check_fields(df, list(rows), "--rows")
    check_fields(df, list(columns), "--columns")
    if len(set(keys)) != len(keys):
        raise UserError(f"--rows/--columns: a field appears twice in {keys}; allowed: each field once")
    _warn_mixed(df, keys)
    ok = (df["status"] == "ok") & df["value"].notna()
    work = pd.DataFrame({k: df[k] for k in keys})
    work["_v"] = df["value"].where(ok)
    work["_failed"] = (~ok & ~df["status"].isin(["collapsed", INVALID])).astype(int)
    work["_collapsed"] = (df["status"] == "collapsed").astype(int)
    work["_invalid"] = (df["status"] == INVALID).astype(int)
    work["_refs"] = evidence_refs(df).where(ok, None).map(lambda r: () if r is None else (r,))
    work["_ntest"] = test_counts(df).where(ok)
    work["seed"] = df["seed"] if "seed" in df else None
    if "seed" in df and "seed" not in keys and work.duplicated(keys + ["seed"]).any():
        # a seed that appears twice in a cell (two configurations) is one sample, not two: average it first,
        # so n and the std count distinct seeds (skipped when none repeats: per-group Python at 100k rows)
        work = work.groupby(keys + ["seed"], dropna=False, sort=False).agg(
            _v=("_v", "mean"), _failed=("_failed", "sum"), _collapsed=("_collapsed", "sum"),
            _invalid=("_invalid", "sum"), _refs=("_refs", lambda s: sum(s, ())), _ntest=("_ntest", "max")).reset_index()
    work["_s"] = samples_of(work)  # what intervals and paired tests need: per seed, its value and evidence
    grouped = work.groupby(keys, dropna=False, sort=False)
    out = grouped.agg(mean=("_v", "mean"), std=("_v", lambda s: s.std(ddof=1)), n=("_v", "count"),
                      n_failed=("_failed", "sum"), n_collapsed=("_collapsed", "sum"), n_invalid=("_invalid", "sum"),
                      _samples=("_s", lambda s: tuple(x for x in s if x is not None))).reset_index()
    out["n"] = out["n"].astype(int)
    out["std"] = out["std"].astype(float)
    out["status"] = [_status(*c) for c in zip(out["n"], out["n_failed"], out["n_collapsed"], out["n_invalid"])]
    out.attrs.update(rows=list(rows), columns=list(columns))
    return out


def _status(n: int, failed: int, collapsed: int, invalid: int = 0) -> str:
    """ok when a seed is; else what the seeds were: failed, collapsed, invalid, or several of them joined by /."""
    if n > 0:
        return "ok"
    return "/".join(w for w, k in (("failed", failed), ("collapsed", collapsed), (INVALID, invalid)) if k) or "failed"


def _warn_mixed(df: pd.DataFrame, keys: list[str]) -> None:
    """A cell that mixes settings (two backbones, two kNN configs) would average apples and pears: say so."""
    if df.empty:
        return
    grouped = df.groupby(keys, dropna=False, sort=False)
    mixed = [f for f in SETTING_FIELDS if f not in keys and f in df and (grouped[f].nunique() > 1).any()]
    if mixed:
        warnings.warn(f"table cells mix several values of {', '.join(mixed)}; add them to --rows or --columns "
                      "to keep them apart", stacklevel=3)
    if "seed" in df and "seed" not in keys:
        repeated = grouped["seed"].agg(lambda s: s.duplicated().any())
        if repeated.any() and not mixed:
            warnings.warn("some table cells hold the same seed twice (two configurations of one method, or two "
                          "evaluations with different parameters); each seed's values are averaged first, so n and std "
                          "count distinct seeds", stacklevel=3)


def mark_best(agg: pd.DataFrame, rows: list[str], columns: list[str], eligible: pd.Series | None = None,
              unc: Uncertainty | None = None) -> None:
    """Add `best` (highest mean in its column) and `tied` in place: a line is tied with the best when the paired
    test of the two (Uncertainty.paired: t over shared seeds, else the bootstrap over one seed's test images)
    does not reject equality at unc.alpha. `p_vs_best` and `tie_test` ("t", "bootstrap", or "none" when no test
    was possible: never tied) say why. Only `eligible` lines compete (our runs, not reported numbers)."""
    unc = unc or Uncertainty()
    agg["best"], agg["tied"], agg["p_vs_best"], agg["tie_test"] = False, False, np.nan, ""
    if agg.empty:
        return
    ok = agg["status"].eq("ok") & agg["mean"].notna()
    if eligible is not None:
        ok &= eligible
    col_key = _col_key(agg, columns)
    samples = agg["_samples"] if "_samples" in agg else pd.Series([()] * len(agg), index=agg.index)
    for _, idx in agg[ok].groupby(col_key[ok], sort=False).groups.items():
        means = agg.loc[idx, "mean"]
        top = means.max()
        agg.loc[idx, "best"] = means == top
        ref = means.index[means == top][0]
        for i in means.index[means < top]:
            res = unc.paired(_tuple(samples[ref]), _tuple(samples[i]))
            agg.at[i, "tie_test"] = "none" if res is None else res.test
            if res is not None:
                agg.at[i, "p_vs_best"] = res.p
                agg.at[i, "tied"] = res.p >= unc.alpha


def _tuple(v) -> tuple:
    return v if isinstance(v, tuple) else ()


def _col_key(agg: pd.DataFrame, columns: list[str]) -> pd.Series:
    if not columns:
        return pd.Series(["all"] * len(agg), index=agg.index)
    return agg[columns].apply(lambda r: "\x1f".join("" if is_missing(v) else str(v) for v in r), axis=1)
