"""Published reference numbers (papers, other projects) as data, in the record vocabulary, each with the setting
it was measured in (protocol, backbone, pretraining epochs and batch, evaluation recipe) and its source.

Installed as `ssl_bench.published`; the CSV files beside this module are package data (see README.md). Names are
checked against the registry: protocols the evaluations declare, datasets the registry declares (with or without
a loader), metrics ssl_bench.metrics declares.
"""
from __future__ import annotations

import io
import re
from importlib import resources
from typing import Any

import pandas as pd
import yaml

from ssl_bench.evaluation import UNSTATED, recipe_id

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

COLUMNS = ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "label_fraction",
           "value", "epochs", "batch_size", "eval_recipe", "source", "note")
# Optional last column: the evaluation recipe in the protocol's own terms (Protocol.recipe_fields), a YAML flow
# mapping such as `{k: 200, temperature: 0.1, ...}`, `?` for a value the source does not state. A file without
# the column, or a row with it empty, states no recipe: its rows are shown for reference only, never subtracted.
RECIPE = "recipe"
# epochs and batch_size may be empty where the source does not state them; the recipe and source never are.
REQUIRED = ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "value", "eval_recipe",
            "source")
SETTING = ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "label_fraction",
           "epochs", "batch_size", "eval_recipe")
TEXT = {"note": object, "source": object, "eval_recipe": object, RECIPE: object}


def files() -> list[str]:
    return sorted(p.name for p in resources.files(__name__).iterdir() if p.name.endswith(".csv"))


def load_published() -> pd.DataFrame:
    """Every published row, one per number, with a `file` column naming the CSV it came from."""
    frames = []
    for name in files():
        text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
        frame = pd.read_csv(io.StringIO(text), dtype=TEXT)
        check(frame, name)
        if RECIPE not in frame:
            frame[RECIPE] = None
        frame[RECIPE] = [None if _blank(t) else parse_recipe(t) for t in frame[RECIPE]]
        frames.append(frame.assign(file=name))
    df = pd.concat(frames, ignore_index=True)
    df["recipe_id"] = [None if r is None else recipe_id(r) for r in df[RECIPE]]
    for col in ("label_fraction", "value", "epochs", "batch_size"):
        df[col] = df[col].astype(float)
    df["note"] = df["note"].astype(object).where(df["note"].notna(), "")
    return df


def check(frame: pd.DataFrame, name: str) -> None:
    """Fail loudly on a malformed data file: wrong columns, names the registry does not declare, bad values."""
    from ssl_bench.report.tables.vocab import datasets, metrics, protocols

    frame = frame.drop(columns=["recipe_id"], errors="ignore")  # derived by load_published: a loaded frame checks
    if tuple(frame.columns) not in (COLUMNS, COLUMNS + (RECIPE,)):
        raise ValueError(f"{name}: columns {list(frame.columns)}; expected {list(COLUMNS)} (optionally + "
                         f"['{RECIPE}'])")
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
    if RECIPE in frame:
        _check_recipes(frame, name, declared)
    keyed = frame.assign(**{RECIPE: frame[RECIPE].map(str)}) if RECIPE in frame else frame
    dup = keyed.duplicated(subset=list(SETTING) + ([RECIPE] if RECIPE in frame else []), keep=False)
    if dup.any():
        raise ValueError(f"{name}: the same setting appears twice on line(s) {_lines(dup)}")


def parse_recipe(text: str | dict) -> dict[str, Any]:
    """A `recipe` cell as a dict: YAML flow mapping, numbers that YAML leaves as text (1e-6) read as numbers."""
    value = text if isinstance(text, dict) else yaml.safe_load(text)
    if not isinstance(value, dict) or not value:
        raise ValueError(f"not a mapping {{field: value, ...}}: {text!r}")
    return {str(k): _number(v) for k, v in value.items()}


def _number(v: Any) -> Any:
    if isinstance(v, list):
        return [_number(x) for x in v]
    if isinstance(v, str) and _NUMBER.fullmatch(v):
        return float(v)
    return v


def _blank(text: Any) -> bool:
    return text is None or (isinstance(text, dict) and not text) or (isinstance(text, float) and text != text) or (isinstance(text, str) and not text.strip())


def _check_recipes(frame: pd.DataFrame, name: str, declared: dict) -> None:
    """Each stated recipe is a mapping of exactly its protocol's recipe fields (`?` where the source is silent)."""
    for i, (proto, text) in enumerate(zip(frame["protocol"], frame[RECIPE])):
        if _blank(text):
            continue
        try:
            recipe = parse_recipe(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"{name}: recipe on line {i + 2}: {exc}") from None
        fields = set(declared[proto].recipe_fields)
        if set(recipe) != fields:
            raise ValueError(f"{name}: recipe on line {i + 2} for protocol {proto}: fields {sorted(recipe)}; "
                             f"expected {sorted(fields)} (write {UNSTATED} where the source does not say)")


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
