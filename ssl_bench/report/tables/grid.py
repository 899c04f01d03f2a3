"""A tidy table frame pivoted into a grid of cells (rows x columns), independent of the output format."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ssl_bench.report.tables.layouts import Section
from ssl_bench.report.tables.reference import REPORTED_SETTING
from ssl_bench.report.tables.vocab import FIELD_LABEL, is_missing, sort_key, value_label

REFERENCE_MARK = "‡"  # a published row of another protocol or setting than ours: shown without a delta


@dataclass
class Cell:
    kind: str = "missing"  # value | delta | missing
    mean: float = float("nan")
    std: float = float("nan")
    n: int = 0
    status: str = "ok"  # ok | failed | collapsed | invalid | several joined by "/"
    n_failed: int = 0
    n_collapsed: int = 0
    n_invalid: int = 0
    best: bool = False
    tied: bool = False
    reported: bool = False
    ci_lo: float = float("nan")
    ci_hi: float = float("nan")
    ci_method: str = ""  # t | bootstrap | "no evidence" (one seed: shown [n/a]) | "" (none asked, or reported)


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
    has_reference: bool = False  # some reported rows are marked REFERENCE_MARK
    notes: list[str] = field(default_factory=list)
    # how intervals and tie marks were computed (Uncertainty.notes() + "tests"), for the footnote
    uncertainty: dict[str, Any] = field(default_factory=dict)


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
    seen = {f: _first_seen(tidy[f]) for f in rows + columns + list(REPORTED_SETTING) if f in tidy}
    seen["method"] = _first_seen(list(tidy.loc[~tidy["reported"], "method"]) + list(tidy["method"]))
    col_keys = _ordered(list(dict.fromkeys(_key(r, columns) for _, r in tidy.iterrows())), columns, seen)
    ours = tidy[~tidy["reported"]]
    rep = tidy[tidy["reported"]]
    ours_keys = _ordered(list(dict.fromkeys(_key(r, rows) for _, r in ours.iterrows())), rows, seen)
    # one reported line per published setting: the rows' keys plus whatever else sets it apart
    rep_fields = rows + [f for f in REPORTED_SETTING if f in tidy and f not in rows + columns]
    rep_keys = _ordered(list(dict.fromkeys(_key(r, rep_fields) for _, r in rep.iterrows())), rep_fields, seen)

    with_delta = [c for c in col_keys if ours.loc[[_key(r, columns) == c for _, r in ours.iterrows()],
                                                  "delta"].notna().any()] if len(ours) else []
    labels = [sec.col_label(dict(zip(columns, c))) if sec.col_label else
              " ".join(x for x in (value_label(f, v) for f, v in zip(columns, c)) if x) or "Value"
              for c in col_keys]
    grid = Grid(sec.title, [FIELD_LABEL.get(f, f) for f in rows], [], notes=list(sec.notes),
                uncertainty=dict(tidy.attrs.get("uncertainty", {})))
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
    recipes: dict[tuple, list[str]] = {}  # (protocol, evaluation recipe) -> the reported lines measured so
    for rk in rep_keys:
        parts = [r for (k, _), r in rep_index.items() if k == rk]
        label, tag = _reported_label(grid, rows, rep_fields, rk, parts, tidy.attrs.get("protocols", []))
        grid.row_labels.append(label)
        recipes.setdefault(_recipe(parts), []).append(tag)
        line = []
        for c in col_keys:
            line.append(_cell(rep_index.get((rk, c))))
            if c in with_delta:
                line.append(Cell())
        grid.cells.append(line)
    grid.notes += [f"Evaluation of {', '.join(dict.fromkeys(tags))}: {proto}; {recipe}{'; ' + check if check else ''}."
                   for (proto, recipe, check), tags in recipes.items()]
    return grid


def _recipe(parts: list[pd.Series]) -> tuple[str, str, str]:
    """A reported line's protocol and evaluation recipe, as its source states them, and how that recipe met
    ours (the fields that differ, or those the source leaves unstated)."""
    r = parts[0]
    proto = f"{value_label('protocol', r['protocol'])} (`{r['protocol']}`)" if "protocol" in r else "protocol as ours"
    recipe = str(r["eval_recipe"]) if "eval_recipe" in r and not is_missing(r["eval_recipe"]) else "recipe not stated"
    checks = [str(p["recipe_note"]) for p in parts if "recipe_note" in p and not is_missing(p["recipe_note"])]
    return proto, recipe, "; ".join(dict.fromkeys(c for c in checks if c))


def _reported_label(grid: Grid, rows: list[str], fields: list[str], rk: tuple, parts: list[pd.Series],
                    ours_protocols: list[str]) -> tuple[list[str], str]:
    """`method (reported, <what sets it apart>) [source numbers]`, marked when it is a reference row; and the
    short tag `method [source numbers]` (marked) that the notes use. The protocol is named unless it is the one
    protocol of our rows in this table."""
    refs = []
    for r in parts:
        if r["source"] not in grid.sources:
            grid.sources.append(r["source"])
        refs.append(grid.sources.index(r["source"]) + 1)
    setting = dict(zip(fields, rk))
    tags = ["reported"]
    if "protocol" in fields[len(rows):] and [setting["protocol"]] != list(ours_protocols):
        tags.append(value_label("protocol", setting["protocol"]))
    if "epochs" in fields[len(rows):] and not is_missing(setting["epochs"]):
        tags.append(f"{int(setting['epochs'])} ep")
    if "batch_size" in fields[len(rows):] and not is_missing(setting["batch_size"]):
        tags.append(f"batch {int(setting['batch_size'])}")
    reference = all(bool(r.get("reference", False)) for r in parts)
    grid.has_reference |= reference
    ref = ",".join(str(i) for i in sorted(set(refs)))
    label = [value_label(f, v) if f != "method" else str(v) for f, v in zip(rows, rk)]
    mark = REFERENCE_MARK if reference else ""
    tag = f"{label[0]} [{ref}]{mark}"
    label[0] = f"{label[0]} ({', '.join(tags)}) [{ref}]{mark}"
    return label, tag


def _cell(r: pd.Series | None) -> Cell:
    if r is None:
        return Cell()
    ci = {"ci_lo": float(r["ci_lo"]), "ci_hi": float(r["ci_hi"]), "ci_method": str(r["ci_method"])} \
        if "ci_method" in r and isinstance(r["ci_method"], str) else {}
    return Cell("value", mean=float(r["mean"]), std=float(r["std"]),
                n=0 if is_missing(r["n"]) else int(r["n"]), status=str(r["status"]),
                n_failed=int(r["n_failed"]), n_collapsed=int(r["n_collapsed"]),
                n_invalid=int(r.get("n_invalid", 0)), best=bool(r["best"]),
                tied=bool(r["tied"]), reported=bool(r["reported"]), **ci)
