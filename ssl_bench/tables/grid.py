"""A tidy table frame pivoted into a grid of cells (rows x columns), independent of the output format."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .layouts import Section
from .vocab import FIELD_LABEL, is_missing, sort_key, value_label


@dataclass
class Cell:
    kind: str = "missing"  # value | delta | missing
    mean: float = float("nan")
    std: float = float("nan")
    n: int = 0
    status: str = "ok"  # ok | failed | collapsed | failed/collapsed
    n_failed: int = 0
    n_collapsed: int = 0
    best: bool = False
    tied: bool = False
    reported: bool = False


@dataclass
class Grid:
    title: str
    row_header: list[str]
    col_labels: list[str]
    row_labels: list[list[str]] = field(default_factory=list)
    cells: list[list[Cell]] = field(default_factory=list)
    n_max: int = 0  # most seeds behind one of our cells; fewer are shown as (n=k)
    sources: list[str] = field(default_factory=list)  # numbered [1], [2] ... in reported row labels
    has_delta: bool = False
    notes: list[str] = field(default_factory=list)


def _first_seen(values) -> dict[Any, int]:
    seen: dict[Any, int] = {}
    for v in values:
        seen.setdefault(v, len(seen))
    return seen


def _key(row: pd.Series, fields: list[str]) -> tuple:
    return tuple(None if is_missing(row[f]) else row[f] for f in fields)


def _ordered(keys: list[tuple], fields: list[str], seen: dict[str, dict]) -> list[tuple]:
    return sorted(keys, key=lambda k: [sort_key(f, v, seen[f]) for f, v in zip(fields, k)])


def build_grid(sec: Section, tidy: pd.DataFrame) -> Grid:
    rows, columns = sec.rows, sec.columns
    seen = {f: _first_seen(tidy[f]) for f in rows + columns + ["epochs"] if f in tidy}
    seen["method"] = _first_seen(list(tidy.loc[~tidy["reported"], "method"]) + list(tidy["method"]))
    col_keys = _ordered(list(dict.fromkeys(_key(r, columns) for _, r in tidy.iterrows())), columns, seen)
    ours = tidy[~tidy["reported"]]
    rep = tidy[tidy["reported"]]
    ours_keys = _ordered(list(dict.fromkeys(_key(r, rows) for _, r in ours.iterrows())), rows, seen)
    rep_fields = rows + (["epochs"] if "epochs" not in rows else [])
    rep_keys = _ordered(list(dict.fromkeys(_key(r, rep_fields) for _, r in rep.iterrows())), rep_fields, seen)

    with_delta = [c for c in col_keys if ours.loc[[_key(r, columns) == c for _, r in ours.iterrows()],
                                                  "delta"].notna().any()] if len(ours) else []
    labels = [sec.col_label(dict(zip(columns, c))) if sec.col_label else
              " ".join(x for x in (value_label(f, v) for f, v in zip(columns, c)) if x) or "Value"
              for c in col_keys]
    grid = Grid(sec.title, [FIELD_LABEL.get(f, f) for f in rows], [], notes=list(sec.notes))
    for c, label in zip(col_keys, labels):
        grid.col_labels.append(label)
        if c in with_delta:
            grid.col_labels.append(f"Δ {label}")
    grid.has_delta = bool(with_delta)
    grid.n_max = int(ours["n"].max()) if len(ours) else 0

    index = {(_key(r, rows), _key(r, columns)): r for _, r in ours.iterrows()}
    for rk in ours_keys:
        grid.row_labels.append([value_label(f, v) if f != "method" else str(v) for f, v in zip(rows, rk)])
        line = []
        for c in col_keys:
            r = index.get((rk, c))
            line.append(_cell(r))
            if c in with_delta:
                line.append(Cell("delta", mean=float(r["delta"])) if r is not None and pd.notna(r["delta"])
                            else Cell())
        grid.cells.append(line)

    rep_index = {(_key(r, rep_fields), _key(r, columns)): r for _, r in rep.iterrows()}
    for rk in rep_keys:
        parts = [r for (k, _), r in rep_index.items() if k == rk]
        refs = []
        for r in parts:
            if r["source"] not in grid.sources:
                grid.sources.append(r["source"])
            refs.append(grid.sources.index(r["source"]) + 1)
        epochs = rk[-1] if "epochs" not in rows else None
        tag = "reported" + (f", {int(epochs)} ep" if not is_missing(epochs) else "")
        ref = ",".join(str(i) for i in sorted(set(refs)))
        label = [value_label(f, v) if f != "method" else str(v) for f, v in zip(rows, rk)]
        label[0] = f"{label[0]} ({tag}) [{ref}]"
        grid.row_labels.append(label)
        line = []
        for c in col_keys:
            line.append(_cell(rep_index.get((rk, c))))
            if c in with_delta:
                line.append(Cell())
        grid.cells.append(line)
    return grid


def _cell(r: pd.Series | None) -> Cell:
    if r is None:
        return Cell()
    return Cell("value", mean=float(r["mean"]), std=float(r["std"]),
                n=0 if is_missing(r["n"]) else int(r["n"]), status=str(r["status"]),
                n_failed=int(r["n_failed"]), n_collapsed=int(r["n_collapsed"]), best=bool(r["best"]),
                tied=bool(r["tied"]), reported=bool(r["reported"]))
