"""Paper-style comparison tables from results.jsonl: mean +- std (or an interval) over seeds, best / tied marks (a
paired test), published rows.

    df = load_results(["results/quickstart"])
    print(render(df, layout="linear", fmt="latex", with_published=True))
"""
from __future__ import annotations

import pandas as pd

from ssl_bench.errors import UserError
from ssl_bench.report.tables.aggregate import aggregate, mark_best
from ssl_bench.report.tables.build import concat_frames, is_aggregated, section_frame, table_frame, table_frames
from ssl_bench.report.tables.formats import FORMATS, html_tables, latex, markdown
from ssl_bench.report.tables.grid import build_grid
from ssl_bench.report.tables.layouts import Section, add_target, summary_section
from ssl_bench.report.tables.uncertainty import Uncertainty, add_intervals
from ssl_bench.report.tables.load import load_results

__all__ = ["load_results", "aggregate", "render", "summary_table", "summary", "table_frame", "FORMATS"]


def render(df_or_agg: pd.DataFrame, layout: str = "auto", fmt: str = "markdown", rows: list[str] | None = None,
           columns: list[str] | None = None, with_published: bool = False, decimals: int = 1, ci: bool = False,
           ci_level: float = 0.95, alpha: float = 0.05) -> str:
    """Tables as text. `df_or_agg` is either records (from load_results) or the output of `aggregate`.

    layout: auto / all (every preset that has results), linear, semi, transfer; rows / columns: a free pivot.
    An aggregated frame is shown as one table on its own rows / columns (layout and published rows do not apply).
    ci: show each cell's `ci_level` interval instead of the std; alpha: level of the tests behind the tie marks.
    """
    if fmt not in FORMATS:
        raise UserError(f"--format: bad value '{fmt}'; allowed: {', '.join(FORMATS)}")
    unc = Uncertainty(ci=ci, level=ci_level, alpha=alpha)
    if is_aggregated(df_or_agg):
        pairs = [_pre_aggregated(df_or_agg, rows, columns, unc)]
    else:
        pairs = table_frames(df_or_agg, layout, rows, columns, with_published, unc)
    if fmt == "csv":
        frame = concat_frames(pairs) if not is_aggregated(df_or_agg) else pairs[0][1]
        return frame[[c for c in frame.columns if not c.startswith("_")]].to_csv(index=False)
    grids = [build_grid(sec, tidy) for sec, tidy in pairs]
    writer = {"markdown": markdown, "latex": latex, "html": html_tables}[fmt]
    return writer(grids, decimals)


def summary_table(out_dir: str) -> str:
    """The markdown table `ssl-bench run` prints at its end: one row per method, one column per protocol metric."""
    return summary(load_results([out_dir]))


def summary(df: pd.DataFrame, fmt: str = "markdown", ci: bool = False) -> str:
    """The summary table of records `df` (see summary_table) as markdown or html."""
    df = add_target(df)
    sec = summary_section(df)
    grid = build_grid(sec, section_frame(sec, df, unc=Uncertainty(ci=ci)))
    return html_tables([grid]) if fmt == "html" else markdown([grid])


def _pre_aggregated(agg: pd.DataFrame, rows: list[str] | None, columns: list[str] | None, unc: Uncertainty):
    rows = rows or agg.attrs.get("rows")
    columns = columns or agg.attrs.get("columns")
    if not rows or columns is None:
        raise UserError("render: an aggregated frame needs rows and columns (pass them, or use aggregate's output)")
    tidy = agg.copy()
    for col, default in (("reported", False), ("source", "ours"), ("note", ""), ("delta", float("nan"))):
        if col not in tidy:
            tidy[col] = default
    mark_best(tidy, rows, columns, eligible=~tidy["reported"].astype(bool), unc=unc)
    if unc.ci:
        add_intervals(tidy, unc)
    tidy.attrs["uncertainty"] = {**unc.notes(), "tests": sorted(set(tidy["tie_test"]) - {""})}
    return Section("table", "", lambda d: d, list(rows), list(columns)), tidy
