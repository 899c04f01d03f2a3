"""From records to tidy table frames: sections, aggregation, published rows, deltas and best / tied marks."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ssl_bench.report.tables.notes import hardware_notes, table_notes as budget_notes
from ssl_bench.errors import UserError
from ssl_bench.report.tables.aggregate import aggregate, check_fields, mark_best
from ssl_bench.registry import TABLE_LAYOUTS
from ssl_bench.report.tables.layouts import Section, add_target, pivot_section, preset_sections
from ssl_bench.report.tables.reference import REPORTED_SETTING, deltas, load_reference, relevant, reported_frame, widen_rows
from ssl_bench.report.tables.uncertainty import Uncertainty, add_intervals

TIDY_TAIL = ("mean", "std", "n", "n_failed", "n_collapsed", "n_invalid", "status", "reported", "reference", "source",
             "note", "recipe_note", "delta", "best", "tied")
CI_TAIL = ("ci_lo", "ci_hi", "ci_method", "ci_level", "p_vs_best", "tie_test")  # with --ci only


def is_aggregated(df: pd.DataFrame) -> bool:
    return "mean" in df.columns and "value" not in df.columns


def sections_for(df: pd.DataFrame, layout: str = "auto", rows: list[str] | None = None,
                 columns: list[str] | None = None) -> list[Section]:
    """The tables to print for these records (df must carry `target`, see layouts.add_target)."""
    TABLE_LAYOUTS.get(layout, where="--layout")  # an unknown layout is refused before any pivot
    if rows is None and columns is None:
        return preset_sections(df, layout)
    for opt, fields in (("--rows", rows), ("--columns", columns)):
        if fields is not None:
            if not fields:
                raise UserError(f"{opt}: empty; allowed: one or more record fields")
            check_fields(df, fields, opt)
    base = None
    if layout not in ("auto", "all"):  # these cover every record: a pivot over them needs no filter
        presets = preset_sections(df, layout)
        base = lambda d: pd.concat([s.select(d) for s in presets])  # noqa: E731
    return [pivot_section(df, rows, columns, base)]


def _marked(ours: pd.DataFrame, note: str) -> bool:
    """A note about marked rows belongs under a table only when one of its rows carries the mark."""
    return "method" in ours and ours["method"].astype(str).str.endswith(" " + note[0]).any()


def section_frame(sec: Section, df: pd.DataFrame, published: pd.DataFrame | None = None,
                  unc: Uncertainty | None = None) -> pd.DataFrame:
    """Tidy frame of one table: one line per (row, column) cell of ours, then the reported ones; with unc.ci,
    each line's interval and its test against the best (CI_TAIL)."""
    unc = unc or Uncertainty()
    ours = sec.select(df)
    sec.notes = list(dict.fromkeys(sec.notes + [n for n in df.attrs.get("notes", []) if _marked(ours, n)]
                                   + budget_notes(ours) + hardware_notes(ours)))  # budget matched; precision
    shown = relevant(sec, ours, published) if published is not None else None
    if shown is not None and not shown.empty:
        sec.rows = widen_rows(sec, ours, shown)
    agg = aggregate(ours, sec.rows, sec.columns)
    agg["reported"] = False
    agg["reference"] = False
    agg["source"] = "ours"
    agg["note"] = ""
    agg["recipe_note"] = ""
    keys = sec.rows + sec.columns
    agg["delta"], matched, recipe_notes = np.nan, set(), {}
    if shown is not None and not shown.empty:  # deltas only against the rows shown, of the same setting and recipe
        agg["delta"], matched, recipe_notes = deltas(agg, ours, keys, shown)
    frames = [agg]
    if shown is not None and not shown.empty:
        frames.append(reported_frame(shown, sec.rows, sec.columns, matched, recipe_notes))
    tidy = pd.concat(frames, ignore_index=True) if len(frames) > 1 else agg
    mark_best(tidy, sec.rows, sec.columns, eligible=~tidy["reported"].astype(bool), unc=unc)
    if not sec.ranked:
        tidy["best"], tidy["tied"] = False, False
    if unc.ci:
        add_intervals(tidy, unc)
    tests = sorted(set(tidy["tie_test"]) - {""})  # for the footnote: which tests decided the marks
    head = list(dict.fromkeys(keys + [f for f in REPORTED_SETTING if f in tidy]))
    tidy = tidy[head + list(TIDY_TAIL) + (list(CI_TAIL) if unc.ci else [])].copy()
    tidy.insert(0, "table", sec.name)
    tidy["n"] = tidy["n"].astype(float) if tidy["reported"].any() else tidy["n"].astype(int)
    tidy.attrs.update(rows=list(sec.rows), columns=list(sec.columns),
                      protocols=sorted(set(ours["protocol"].dropna().astype(str))),  # what reported lines differ from
                      uncertainty={**unc.notes(), "tests": tests})
    return tidy


def table_frames(df: pd.DataFrame, layout: str = "auto", rows: list[str] | None = None,
                 columns: list[str] | None = None, with_published: bool = False,
                 unc: Uncertainty | None = None) -> list[tuple[Section, pd.DataFrame]]:
    df = add_target(df)
    published = load_reference() if with_published else None
    unc = unc or Uncertainty()  # one for all tables: each evidence file is read and resampled once
    return [(sec, section_frame(sec, df, published, unc)) for sec in sections_for(df, layout, rows, columns)]


def table_frame(df: pd.DataFrame, layout: str = "auto", rows: list[str] | None = None,
                columns: list[str] | None = None, with_published: bool = False,
                unc: Uncertainty | None = None) -> pd.DataFrame:
    """All tables of `render` as one tidy frame (the CSV format writes exactly this), `table` naming each."""
    return concat_frames(table_frames(df, layout, rows, columns, with_published, unc))


def concat_frames(pairs: list[tuple[Section, pd.DataFrame]]) -> pd.DataFrame:
    parts = [t for _, t in pairs]
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    for col in out.columns:  # column types as a CSV reader infers them, so a reread compares equal
        if out[col].dtype.kind in "biuf":
            continue
        text = out[col].replace("", np.nan)
        out[col] = text.astype(float) if text.isna().all() else text.astype("str")
    return out
