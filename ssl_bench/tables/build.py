"""From records to tidy table frames: sections, aggregation, published rows, deltas and best / tied marks."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import UserError
from .aggregate import aggregate, check_fields, mark_best
from .layouts import LAYOUTS, Section, add_target, pivot_section, preset_sections
from .reference import deltas, load_reference, relevant, reported_frame, widen_rows

TIDY_TAIL = ("mean", "std", "n", "n_failed", "n_collapsed", "status", "reported", "source", "note", "delta",
             "best", "tied")


def is_aggregated(df: pd.DataFrame) -> bool:
    return "mean" in df.columns and "value" not in df.columns


def sections_for(df: pd.DataFrame, layout: str = "auto", rows: list[str] | None = None,
                 columns: list[str] | None = None) -> list[Section]:
    """The tables to print for these records (df must carry `target`, see layouts.add_target)."""
    if layout not in LAYOUTS:
        raise UserError(f"--layout: bad value '{layout}'; allowed: {', '.join(LAYOUTS)}")
    if rows is None and columns is None:
        return preset_sections(df, layout)
    for opt, fields in (("--rows", rows), ("--columns", columns)):
        if fields is not None:
            if not fields:
                raise UserError(f"{opt}: empty; allowed: one or more record fields")
            check_fields(df, fields, opt)
    base = None
    if layout not in ("auto", "all"):
        presets = preset_sections(df, layout)
        base = lambda d: pd.concat([s.select(d) for s in presets])  # noqa: E731
    return [pivot_section(df, rows, columns, base)]


def section_frame(sec: Section, df: pd.DataFrame, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tidy frame of one table: one line per (row, column) cell of ours, then the reported ones."""
    ours = sec.select(df)
    shown = relevant(sec, ours, published) if published is not None else None
    if shown is not None and not shown.empty:
        sec.rows = widen_rows(sec, ours, shown)
    agg = aggregate(ours, sec.rows, sec.columns)
    agg["reported"] = False
    agg["source"] = "ours"
    agg["note"] = ""
    keys = sec.rows + sec.columns
    agg["delta"] = deltas(agg, ours, keys, published) if published is not None else np.nan
    frames = [agg]
    if shown is not None and not shown.empty:
        frames.append(reported_frame(shown, sec.rows, sec.columns))
    tidy = pd.concat(frames, ignore_index=True) if len(frames) > 1 else agg
    mark_best(tidy, sec.rows, sec.columns, eligible=~tidy["reported"].astype(bool))
    head = list(dict.fromkeys(keys + (["epochs"] if "epochs" in tidy else [])))
    tidy = tidy[head + list(TIDY_TAIL)].copy()
    tidy.insert(0, "table", sec.name)
    tidy["n"] = tidy["n"].astype(float) if tidy["reported"].any() else tidy["n"].astype(int)
    tidy.attrs.update(rows=list(sec.rows), columns=list(sec.columns))
    return tidy


def table_frames(df: pd.DataFrame, layout: str = "auto", rows: list[str] | None = None,
                 columns: list[str] | None = None, with_published: bool = False) -> list[tuple[Section, pd.DataFrame]]:
    df = add_target(df)
    published = load_reference() if with_published else None
    return [(sec, section_frame(sec, df, published)) for sec in sections_for(df, layout, rows, columns)]


def table_frame(df: pd.DataFrame, layout: str = "auto", rows: list[str] | None = None,
                columns: list[str] | None = None, with_published: bool = False) -> pd.DataFrame:
    """All tables of `render` as one tidy frame (the CSV format writes exactly this), `table` naming each."""
    return concat_frames(table_frames(df, layout, rows, columns, with_published))


def concat_frames(pairs: list[tuple[Section, pd.DataFrame]]) -> pd.DataFrame:
    parts = [t for _, t in pairs]
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    for col in out.columns:  # column types as a CSV reader infers them, so a reread compares equal
        if out[col].dtype.kind in "biuf":
            continue
        text = out[col].replace("", np.nan)
        out[col] = text.astype(float) if text.isna().all() else text.astype("str")
    return out
