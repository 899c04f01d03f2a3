"""Which result rows a table may use: a row that is not a plausible measurement (a negative or 1e308 top-1, a seed
that is a string, a 10 MB label) is kept out of every mean and shown as `invalid`, with one warning per file.

A table cell holds a number or a short label; the caps here keep one tampered row from making `table` or
`report` allocate gigabytes (a 10 MB label padded into every line of a markdown table; an overflow in a mean).
"""
from __future__ import annotations

import math
from typing import Any

from ssl_bench.metrics import CLASSIFICATION_METRICS
from ssl_bench.report.tables.vocab import protocols

STATUSES = ("ok", "failed", "collapsed", "skipped")
INVALID = "invalid"  # the status a row gets here; never written by a run
MAX_LABEL_CHARS = 256  # a field a table may show (method, backbone, protocol, ...): safe names are <= 128
MAX_TEXT_CHARS = 2000  # free text (error): longer is cut, not refused
FREE_TEXT = ("error",)
MAX_NUMBER = 1e24  # any other number (images seen, FLOPs): finite and below this
PERCENT = (0.0, 100.0)  # what ssl_bench.metrics' classification metrics return
NUMERIC = {"seed": (0, 2 ** 63), "label_fraction": (0.0, 1.0), "epochs": (0, 1e9), "batch_size": (1, 1e9)}
INTEGER = ("seed",)
LABELS = ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset")  # a row is shown under these
SHOWN = (*LABELS, "metric", "run_id")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _short(x: Any, n: int = 40) -> str:
    """`x` as a label of at most about n characters (a string as it is, anything else as repr)."""
    text = repr(x) if not isinstance(x, str) else x
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} characters)"


def _shown(x: Any) -> str:
    """`x` quoted as Python writes it ('1' for a string, 1 for a number), cut when long."""
    text = repr(x if not isinstance(x, str) or len(x) <= 40 else _short(x))
    return _short(text)


def _value_problem(r: dict[str, Any]) -> str | None:
    v = r.get("value")
    if v is None:
        return None  # a failed row, or an ok row that reported nothing (shown as failed)
    if not _number(v) or not math.isfinite(v):
        return f"value {_shown(v)} is not a finite number"
    lo, hi = PERCENT if r.get("metric") in CLASSIFICATION_METRICS else (-MAX_NUMBER, MAX_NUMBER)
    if not lo <= v <= hi:
        return f"value {v:g} of metric {_shown(r.get('metric'))} is outside [{lo:g}, {hi:g}]"
    return None


def _numeric_problem(key: str, x: Any) -> str | None:
    lo, hi = NUMERIC[key]
    whole = key not in INTEGER or isinstance(x, int)
    if x is None and key not in INTEGER:
        return None
    if not _number(x) or not math.isfinite(x) or not whole or not lo <= x <= hi:
        allowed = "an integer >= 0" if key in INTEGER else f"a number in [{lo:g}, {hi:g}]"
        return f"{key} {_shown(x)} is not {allowed}"
    return None


def _field_problem(key: str, x: Any) -> str | None:
    """A top-level field too big for a table cell. Nested fields (extra, versions) never become cells."""
    t = type(x)
    if t is str:
        return f"{key} is {len(x)} characters (at most {MAX_LABEL_CHARS})" \
            if len(x) > MAX_LABEL_CHARS and key not in FREE_TEXT else None
    if t is float and not (abs(x) <= MAX_NUMBER):  # also NaN and inf (json reads 1e400 as inf)
        return f"{key} {x!r} is not a finite number below {MAX_NUMBER:g}"
    if t is int and not -MAX_NUMBER <= x <= MAX_NUMBER:
        return f"{key} {_shown(x)} is not a number below {MAX_NUMBER:g}"
    return None


def _oversized(r: dict[str, Any]) -> str | None:
    """The first top-level field too big for a cell (the one loop over every field: it runs for each row)."""
    for key, x in r.items():
        t = type(x)
        if (t is str and len(x) > MAX_LABEL_CHARS) or ((t is float or t is int) and not abs(x) <= MAX_NUMBER):
            found = _field_problem(key, x)
            if found:
                return found
    return None


def problem(r: dict[str, Any]) -> str | None:
    """Why row `r` cannot enter a table (None: it can)."""
    status = r.get("status")
    if status is not None and status not in STATUSES:
        return f"status {_shown(status)} is not one of {', '.join(STATUSES)}"
    for key in LABELS:
        if type(r.get(key)) is not str:
            return f"{key} {_shown(r.get(key))} is not a string"
    for key in NUMERIC:
        found = _numeric_problem(key, r.get(key))
        if found:
            return found
    return _value_problem(r) or _oversized(r)


def _as_invalid(r: dict[str, Any], why: str) -> dict[str, Any]:
    """The row as a table shows it: status invalid, no value, every field a short label."""
    out: dict[str, Any] = {}
    for key, x in r.items():
        if key in SHOWN and (type(x) is not str or len(x) > MAX_LABEL_CHARS) and x is not None:
            x = _short(x)  # still names the row, briefly
        elif (_numeric_problem(key, x) if key in NUMERIC else _field_problem(key, x)) is not None:
            x = None  # e.g. a cut eval_key would read as another configuration
        out[key] = x
    return {**out, "status": INVALID, "value": None, "error": f"invalid row: {why}"}


def _cut(r: dict[str, Any]) -> dict[str, Any]:
    long = [k for k in FREE_TEXT if isinstance(r.get(k), str) and len(r[k]) > MAX_TEXT_CHARS]
    return {**r, **{k: f"{r[k][:MAX_TEXT_CHARS]}... (cut from {len(r[k])} characters)" for k in long}} \
        if long else r


def screen(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """(records with every invalid row marked invalid and long free text cut, one note per invalid row)."""
    out, notes = [], []
    for i, r in enumerate(records):
        why = problem(r)
        if why is None:
            out.append(_cut(r))
        else:
            where = f"{_short(r.get('protocol'), 20)}/{_short(r.get('metric'), 20)}"
            notes.append(f"run {_short(r.get('run_id'))} {where} (record {i + 1}): {why}")
            out.append(_as_invalid(r, why))
    return out, notes


def undeclared_protocols(records: list[dict[str, Any]]) -> str:
    """The protocols of `records` that no registered evaluation declares, as one short phrase ("" for none)."""
    known = protocols()
    counts: dict[str, int] = {}
    for r in records:
        p = r.get("protocol")
        if r.get("status") != INVALID and isinstance(p, str) and p not in known:
            counts[p] = counts.get(p, 0) + 1
    return ", ".join(f"{_short(p)!r} ({n} rows)" for p, n in sorted(counts.items())[:5])
