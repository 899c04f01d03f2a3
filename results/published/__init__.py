"""Published reference numbers (papers, other projects) as data, in the record vocabulary, each with the setting
it was measured in (protocol, backbone, pretraining epochs and batch, evaluation recipe) and its source.

Installed as `ssl_bench.published`; the CSV files beside this module are package data (see README.md). Names are
checked against the registry: protocols the evaluations declare, datasets the registry declares (with or without
a loader), metrics ssl_bench.metrics declares.
"""
from __future__ import annotations

import io
from importlib import resources

import pandas as pd

COLUMNS = ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "label_fraction",
           "value", "epochs", "batch_size", "eval_recipe", "source", "note")
# epochs and batch_size may be empty where the source does not state them; the recipe and source never are.
REQUIRED = ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "value", "eval_recipe",
            "source")
SETTING = ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "label_fraction",
           "epochs", "batch_size", "eval_recipe")
TEXT = {"note": object, "source": object, "eval_recipe": object}


def files() -> list[str]:
    return sorted(p.name for p in resources.files(__name__).iterdir() if p.name.endswith(".csv"))


def load_published() -> pd.DataFrame:
    """Every published row, one per number, with a `file` column naming the CSV it came from."""
    frames = []
    for name in files():
        text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
        frame = pd.read_csv(io.StringIO(text), dtype=TEXT)
        check(frame, name)
        frames.append(frame.assign(file=name))
    df = pd.concat(frames, ignore_index=True)
    for col in ("label_fraction", "value", "epochs", "batch_size"):
        df[col] = df[col].astype(float)
    df["note"] = df["note"].astype(object).where(df["note"].notna(), "")
    return df


def check(frame: pd.DataFrame, name: str) -> None:
    """Fail loudly on a malformed data file: wrong columns, names the registry does not declare, bad values."""
    from ssl_bench.report.tables.vocab import datasets, metrics, protocols

    if tuple(frame.columns) != COLUMNS:
        raise ValueError(f"{name}: columns {list(frame.columns)}; expected {list(COLUMNS)}")
    for col in REQUIRED:
        if frame[col].isna().any():
            raise ValueError(f"{name}: empty {col} on line(s) {_lines(frame[col].isna())}")
    declared = protocols()
    for col, allowed in (("pretrain_dataset", datasets()), ("eval_dataset", datasets()), ("protocol", declared),
                         ("metric", metrics())):
        _check_in(frame, name, col, set(allowed))
    for proto, part in frame.groupby("protocol"):  # a metric the protocol's evaluation never writes
        _check_in(part, name, "metric", set(declared[proto].metrics), f" for protocol {proto}")
    _check_numbers(frame, name)
    fractions = frame["protocol"].map(lambda p: declared[p].table == "semi")  # Table 2: label-fraction columns
    if frame.loc[fractions, "label_fraction"].isna().any() or frame.loc[~fractions, "label_fraction"].notna().any():
        raise ValueError(f"{name}: label_fraction must be set for semi-supervised rows and only for them")
    dup = frame.duplicated(subset=list(SETTING), keep=False)
    if dup.any():
        raise ValueError(f"{name}: the same setting appears twice on line(s) {_lines(dup)}")


def _check_in(frame: pd.DataFrame, name: str, col: str, allowed: set, where: str = "") -> None:
    bad = ~frame[col].isin(allowed)
    if bad.any():
        raise ValueError(f"{name}: {col} {sorted(set(frame[col][bad]))}{where} on line(s) {_lines(bad)}; "
                         f"allowed: {sorted(allowed)}")


def _check_numbers(frame: pd.DataFrame, name: str) -> None:
    if not frame["value"].between(0, 100).all():
        raise ValueError(f"{name}: value outside 0-100 on line(s) {_lines(~frame['value'].between(0, 100))}")
    for col in ("epochs", "batch_size"):
        given = frame[col].dropna()
        low = 1 if col == "batch_size" else 0
        bad = ((given != given.round()) | (given < low)).reindex(frame.index, fill_value=False)
        if bad.any():
            raise ValueError(f"{name}: {col} {sorted(set(frame[col][bad]))} on line(s) {_lines(bad)}; allowed: a "
                             f"whole number >= {low}, or empty where the source does not say")


def _lines(mask: pd.Series) -> str:
    return ", ".join(str(i + 2) for i in mask[mask].index[:5])  # +2: header line, 1-based
