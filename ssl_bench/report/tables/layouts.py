"""Which records go in which table, and along which rows and columns: the paper presets and free pivots.

Presets follow the BYOL paper: Table 1 (linear, top-1/top-5 per method), Table 2 (semi-supervised, 1% and 10%
labels), Table 3 (transfer, one column per dataset with that dataset's own metric); plus kNN and a catch-all.
Which preset shows a protocol is declared by the protocol itself (`Protocol.table`, see ssl_bench.evaluation).
Each layout is a function fn(records) -> [Section] registered with `@register_table_layout(name)`
(`ssl-bench table --layout NAME`); sections without records are dropped. A plugin adds one the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from ssl_bench.errors import UserError
from ssl_bench.registry import TABLE_LAYOUTS
from ssl_bench.report.tables.vocab import dataset_label, fraction_label, headline_metric, is_missing, metrics, protocol, protocols

LAYOUTS = ("auto", "linear", "semi", "transfer", "all")
PIVOT_COLUMNS = ("protocol", "target", "label_fraction", "metric")
# The online head learned beside pretraining from a moving encoder: not a probe of the frozen encoder.
ONLINE_TITLE = "Online linear head (trained during pretraining; not a frozen-encoder probe)"


@dataclass
class Section:
    """One table: a filter over records (also applied to published rows) and its row / column fields."""

    name: str
    title: str
    select: Callable[[pd.DataFrame], pd.DataFrame]
    rows: list[str]
    columns: list[str]
    col_label: Callable[[dict], str] | None = None
    notes: list[str] = field(default_factory=list)
    rows_given: bool = False  # chosen by the user: never widened for published rows
    ranked: bool = True  # False: no best / tied marks (label-free quality numbers have no "higher is better")


def add_target(df: pd.DataFrame) -> pd.DataFrame:
    """`target`: the evaluation dataset when it differs from the pretraining one (transfer), else ""."""
    df = df.copy()
    same = df["eval_dataset"] == df["pretrain_dataset"]
    df["target"] = df["eval_dataset"].where(~same, "").fillna("").astype(object)
    return df


def row_fields(df: pd.DataFrame) -> list[str]:
    """method, plus backbone / pretraining data when there are several, plus epochs when a method has several."""
    rows = ["method"] + [f for f in ("backbone", "pretrain_dataset") if df[f].nunique(dropna=False) > 1]
    if "epochs" in df and (df.groupby("method")["epochs"].nunique(dropna=False) > 1).any():
        rows.append("epochs")
    return rows


def own_metric(df: pd.DataFrame) -> pd.DataFrame:
    """Keep each evaluation dataset's own metric (BYOL Table 3): the one its registration declares, else top-1
    (else the first recorded one, in the metrics' declared order)."""
    order = {name: m.order for name, m in metrics().items()}
    keep = []
    for ds, part in df.groupby("eval_dataset", sort=False):
        have = sorted(set(part["metric"].dropna()), key=lambda m: (order.get(m, float("inf")), str(m)))
        metric = headline_metric(ds)
        if metric not in have:
            metric = "top1" if "top1" in have else next(iter(have), None)
        keep.append(part[part["metric"] == metric] if metric else part)
    return pd.concat(keep) if keep else df.iloc[:0]


def _tables(df: pd.DataFrame) -> pd.Series:
    """The preset table each record's protocol declares ("" for none)."""
    by_name = {name: p.table for name, p in protocols().items()}
    return df["protocol"].map(by_name).fillna("").astype(str)  # a dict's lookup: vectorised, no per-row call


def _own_data(df):
    return df["target"] == ""


def _linear_mask(df):
    return (_tables(df) == "linear") & _own_data(df)


def _knn_mask(df):
    return (_tables(df) == "knn") & _own_data(df)


def _online_mask(df):
    return (_tables(df) == "online") & _own_data(df)


def _semi_mask(df):
    return _tables(df) == "semi"


def transfer_mask(df):
    """Transfer protocols, and any frozen-encoder protocol run on another dataset than the pretraining one."""
    tables = _tables(df)
    return (tables == "transfer") | (~_own_data(df) & (tables != "semi"))


def _quality_mask(df):
    return (_tables(df) == "quality") & _own_data(df)


def _quality(df):
    return df[_quality_mask(df)]


QUALITY_NOTE = ("Label-free: no best marked. RankMe and LiDAR are smooth ranks (higher: more directions used); "
                "alpha-ReQ is the eigenspectrum's decay rate; `ssl-bench compare OUT --quality` shows how each ranks "
                "the runs against their kNN and linear top-1.")


def _linear(df):
    return df[_linear_mask(df)]


def _knn(df):
    return df[_knn_mask(df)]


def _semi(df):
    return df[_semi_mask(df)]


def _online(df):
    return df[_online_mask(df)]


def _other(df):
    return df[~(_linear_mask(df) | _knn_mask(df) | _online_mask(df) | _semi_mask(df) | transfer_mask(df)
                | _quality_mask(df))]


def _transfer_of(protocol_name: str):
    return lambda df: own_metric(df[transfer_mask(df) & (df["protocol"] == protocol_name)])


def _by_protocol(records: pd.DataFrame) -> list[str]:
    """Columns of a table that may hold several protocols (linear, linear_sgd, online_linear): one per protocol
    and metric when there are several, so no cell ever mixes two."""
    return ["protocol", "metric"] if records["protocol"].nunique() > 1 else ["metric"]


def _transfer_label(key: dict) -> str:
    return dataset_label(key.get("eval_dataset"), key.get("metric"))


def transfer_title(protocol_name: str) -> str:
    p = protocol(protocol_name)
    return f"{p.label if p is not None else protocol_name}: other datasets"


def _varying(df: pd.DataFrame, fields: tuple[str, ...], always: tuple[str, ...]) -> list[str]:
    return [f for f in fields if f in always or df[f].nunique(dropna=False) > 1]


def preset_sections(df: pd.DataFrame, layout: str) -> list[Section]:
    """Sections of a registered layout that have records (df must carry `target`)."""
    out = [s for s in TABLE_LAYOUTS.get(layout, where="--layout")(df) if not s.select(df).empty]
    if not out:
        present = ", ".join(sorted(df["protocol"].astype(str).unique()))
        raise UserError(f"--layout {layout}: no matching results; protocols present: {present}")
    return out


# `@register_table_layout("name")` on fn(records with `target`) -> list[Section]; its docstring's first line is
# what `ssl-bench list table_layouts` shows.
register_table_layout: Callable[..., Callable[[Callable], Callable]] = TABLE_LAYOUTS.register
BUILTIN_DOCS = {"auto": "every preset that has results: linear, kNN, semi-supervised, transfer, then the others",
                "all": "the same tables as auto",
                "linear": "BYOL Table 1: linear evaluation of the frozen encoder, top-1 / top-5 per method",
                "semi": "BYOL Table 2: semi-supervised fine-tuning, one column per fraction of labels",
                "transfer": "BYOL Table 3: transfer, one column per dataset with that dataset's own metric"}


def _register_builtin(name: str) -> None:
    def layout(df: pd.DataFrame) -> list[Section]:
        return builtin_sections(df, name)

    layout.__doc__ = BUILTIN_DOCS[name]
    register_table_layout(name)(layout)


def builtin_sections(df: pd.DataFrame, layout: str) -> list[Section]:
    """The sections of built-in preset `layout` (one of LAYOUTS, each registered), with or without records."""
    rows = row_fields(df)
    out: list[Section] = []
    if layout in ("linear", "auto", "all"):
        out.append(Section("linear", "Linear evaluation (frozen encoder)", _linear, rows, _by_protocol(_linear(df))))
        out.append(Section("online", ONLINE_TITLE, _online, rows, _by_protocol(_online(df))))
        if layout != "linear":
            out.append(Section("knn", "k-nearest-neighbour classifier (frozen encoder)", _knn, rows,
                               _by_protocol(_knn(df))))
    if layout in ("semi", "auto", "all"):
        cols = ["target", "label_fraction", "metric"] if _semi(df)["target"].nunique() > 1 else \
            ["label_fraction", "metric"]
        out.append(Section("semi", "Semi-supervised fine-tuning (fraction of labels)", _semi, rows, cols))
    if layout in ("transfer", "auto", "all"):
        for name in df.loc[transfer_mask(df), "protocol"].drop_duplicates():
            select = _transfer_of(name)
            out.append(Section(f"transfer:{name}", transfer_title(name), select, rows, ["eval_dataset", "metric"],
                               _transfer_label, [transfer_note(select(df))]))
    if layout in ("auto", "all"):
        out.append(Section("quality", "Label-free quality of the frozen features", _quality, rows, ["metric"],
                           notes=[QUALITY_NOTE], ranked=False))
        cols = _varying(_other(df), PIVOT_COLUMNS, ("protocol", "metric"))
        out.append(Section("other", "Other evaluations", _other, rows, cols))
    return out


for _name in LAYOUTS:
    _register_builtin(_name)


def transfer_note(records: pd.DataFrame) -> str:
    """What the marks beside the dataset names mean (the metrics' declared short marks)."""
    marks = [f"{m.short}: {m.about or m.label}" for name, m in sorted(metrics().items(), key=lambda kv: kv[1].order)
             if m.short and name in set(records["metric"])]
    return "; ".join(["Each dataset's own metric: top-1 unless marked"] + marks) + "."


def pivot_section(df: pd.DataFrame, rows: list[str] | None, columns: list[str] | None,
                  base: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> Section:
    """A free pivot: the user's row and column fields (the other axis filled in from what varies)."""
    select = base or (lambda d: d)
    recs = select(df)
    rows_given = rows is not None
    if columns is None:
        columns = [c for c in _varying(recs, PIVOT_COLUMNS, ("protocol", "metric")) if c not in (rows or [])]
    if rows is None:
        rows = [r for r in row_fields(recs) if r not in columns]
    notes = []
    if "label_fraction" in recs and recs["label_fraction"].dropna().nunique() > 1 \
            and "label_fraction" not in [*rows, *columns]:  # 1% and 10% of labels are two results, never one mean
        columns = [*columns, "label_fraction"]
        notes.append("Label fractions are kept apart (one column each): a cell never averages across them.")
    return Section("pivot", "Results", select, list(rows), list(columns), notes=notes, rows_given=rows_given)


def summary_section(df: pd.DataFrame) -> Section:
    """The end-of-run table: one column per protocol (label fraction, transfer target) and metric; no top-5."""
    select = lambda d: d[d["metric"] != "top5"]  # noqa: E731
    return Section("summary", "", select, row_fields(df), list(PIVOT_COLUMNS), _summary_label)


def _summary_label(key: dict) -> str:
    p = protocol(key["protocol"])
    parts = [(p.short or p.name) if p is not None else str(key["protocol"])]
    if not is_missing(key.get("label_fraction")):
        parts.append(fraction_label(key["label_fraction"]))
    if key.get("target"):
        parts.append(str(key["target"]))
    parts.append(str(key["metric"]))
    return " ".join(parts)
