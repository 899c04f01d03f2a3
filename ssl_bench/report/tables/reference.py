"""Published rows beside ours: which of them a table shows, and the delta of our runs against them.

A delta is printed only between a cell of ours and a published row of the same protocol, setting and evaluation
recipe. The method is matched by its plugin (`method_name`: a suite's `byol-solo` is `byol`), not by the label
tables show. Every other published row a table shows is a reference row: marked, with a note naming its protocol
and setting and, where one of our cells has its setting, the recipe fields that differ; no delta.
"""
from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ssl_bench.report.tables.layouts import Section, row_fields
from ssl_bench.evaluation import recipe_id
from ssl_bench.report.tables.recipes import compare

# Fields a published row and our cell must share exactly (missing only matches missing).
MATCH_FIELDS = ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "label_fraction")
# The rest of the setting: compared wherever our records state them (a published row must then state the same).
# Our records always carry epochs, and batch_size since the recorder writes it. The evaluation recipe is
# compared field by field (report.tables.recipes), never as text.
SETTING_EXTRA = ("epochs", "batch_size")
# What a reported line says about its setting besides the table's row and column keys.
REPORTED_SETTING = ("protocol", "epochs", "batch_size", "eval_recipe")


def load_reference() -> pd.DataFrame:
    return _reference().copy()


@functools.lru_cache(maxsize=1)
def _reference() -> pd.DataFrame:  # package data: read once per process
    from ssl_bench.published import load_published

    from ssl_bench.report.tables.layouts import add_target

    pub = add_target(load_published())
    pub["status"] = "ok"
    return pub


def relevant(sec: Section, ours: pd.DataFrame, pub: pd.DataFrame) -> pd.DataFrame:
    """Published rows of the section's table whose pretraining data and column we also have (a column of another
    protocol counts: such a row is shown for reference)."""
    cand = sec.select(pub)
    cand = cand[cand["pretrain_dataset"].isin(set(ours["pretrain_dataset"]))]
    if cand.empty:
        return cand
    columns = [c for c in sec.columns if c != "protocol"]
    ours_cols = set(_keys(ours, columns))
    return cand[[k in ours_cols for k in _keys(cand, columns)]]


def widen_rows(sec: Section, ours: pd.DataFrame, shown: pd.DataFrame) -> list[str]:
    """Rows that keep reported rows apart from ours and from each other (backbone, pretraining data)."""
    if sec.rows_given or shown.empty:
        return sec.rows
    both = pd.concat([ours[["method", "backbone", "pretrain_dataset"]], shown[["method", "backbone",
                                                                             "pretrain_dataset"]]])
    extra = [f for f in row_fields(both.assign(epochs=np.nan)) if f not in sec.rows]
    return [f for f in ("method", "backbone", "pretrain_dataset", "epochs") if f in sec.rows or f in extra]


def reported_frame(shown: pd.DataFrame, rows: list[str], columns: list[str], matched: set,
                   recipe_notes: dict | None = None) -> pd.DataFrame:
    """Published rows in the aggregated shape: one number each, no std, n unknown. `reference`: no cell of ours
    has this row's protocol, setting and recipe, so it is shown for reference only; `recipe_note` says how its
    recipe compared with ours (fields that differ, or fields the source leaves unstated)."""
    recipe_notes = recipe_notes or {}
    keys = list(dict.fromkeys(rows + columns + [f for f in REPORTED_SETTING if f in shown]))
    out = shown[keys].copy()
    dup = out.duplicated(subset=keys)
    if dup.any():
        warnings.warn(f"{int(dup.sum())} published row(s) share a table cell with another; the first is shown "
                      "(add backbone or pretrain_dataset to --rows)", stacklevel=3)
    out = out.assign(mean=shown["value"].astype(float), std=np.nan, n=np.nan, n_failed=0, n_collapsed=0,
                     n_invalid=0, status="ok", reported=True, reference=~shown.index.isin(list(matched)),
                     source=shown["source"], note=shown["note"], delta=np.nan,
                     recipe_note=[recipe_notes.get(i, "") for i in shown.index])[~dup.to_numpy()]
    return out.reset_index(drop=True)


def deltas(agg: pd.DataFrame, records: pd.DataFrame, keys: list[str],
           pub: pd.DataFrame) -> tuple[pd.Series, set, dict]:
    """Per line of `agg`: our mean minus the published number of exactly the same protocol, setting and recipe
    (NaN if none); the index labels of the published rows some line matched; and per published row that one of
    our lines has the setting of, how its recipe compared (RecipeCheck.text(), for the notes).

    A cell matches only when all its records share one setting (MATCH_FIELDS with the method plugin, plus
    SETTING_EXTRA where the records state them) and one recipe, and exactly one published row has that setting
    and a recipe equal to it on every field it states.
    """
    out = pd.Series(np.nan, index=agg.index)
    matched: set = set()
    notes: dict = {}
    used: dict = {}  # the published rows subtracted: how their recipe met ours
    if records.empty or pub.empty:
        return out, matched, notes
    lookup = _settings(records, keys)
    for i, line in agg[keys].iterrows():
        found = lookup.get(_norm(tuple(line)))
        if found is None:
            continue
        setting, recipe = found
        same = _same_setting(pub, setting)
        checks = {j: compare(recipe, pub.loc[j, "recipe"] if "recipe" in pub else None) for j in same.index}
        for j, check in checks.items():
            notes.setdefault(j, [])
            if check.text() not in notes[j]:
                notes[j].append(check.text())
        good = [j for j, check in checks.items() if check.matches]
        if len(good) == 1:
            out[i] = agg.loc[i, "mean"] - float(pub.loc[good[0], "value"])
            matched.add(good[0])
            used[good[0]] = checks[good[0]].text()
    return out, matched, {j: used.get(j) or "; or ".join(texts) for j, texts in notes.items()}


def _settings(records: pd.DataFrame, keys: list[str]) -> dict[tuple, tuple[pd.Series, Any]]:
    """Per table cell of ours: its one setting (the method as its plugin) and its one recipe; cells whose
    records differ in either are left out (no delta)."""
    fields = list(MATCH_FIELDS) + [f for f in SETTING_EXTRA if f in records]
    plugin = records.assign(method=records["method_name"].fillna(records["method"])) \
        if "method_name" in records else records
    recipes = records["recipe"] if "recipe" in records else pd.Series(None, index=records.index, dtype=object)
    ids = recipes.map(lambda r: recipe_id(r) if isinstance(r, dict) else None)
    lookup = {}
    for gkey, part in records.groupby(keys, dropna=False, sort=False):
        setting = plugin.loc[part.index, fields].drop_duplicates()
        if len(setting) == 1 and ids[part.index].nunique(dropna=False) == 1:
            lookup[_norm(gkey if isinstance(gkey, tuple) else (gkey,))] = (setting.iloc[0], recipes[part.index[0]])
    return lookup


def _same_setting(pub: pd.DataFrame, setting: pd.Series) -> pd.DataFrame:
    match = pub
    for f, v in setting.items():
        if f in SETTING_EXTRA and _missing(v):
            continue  # our records do not know it: not compared
        if f not in match:
            return match.iloc[:0]  # the published rows do not state a field ours do
        if _missing(v):
            match = match[match[f].map(_missing)]
        elif isinstance(v, str):
            match = match[match[f] == v]
        else:
            match = match[pd.to_numeric(match[f], errors="coerce") == float(v)]
    return match


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
