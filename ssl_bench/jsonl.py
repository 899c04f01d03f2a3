"""Strict JSON lines: one reader with one policy for unreadable lines, one writer that never emits NaN/Infinity.

Every JSONL file ssl-bench reads (results.jsonl, metrics.jsonl) goes through `read_jsonl`: a line that does not
parse as a JSON object is returned separately with its line number, so the caller decides whether to warn,
set it aside or stop. Writers go through `dumps`, which turns non-finite floats into null: strict readers
(JavaScript, Go, jq --seq) reject the NaN and Infinity tokens that Python's json module writes by default.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def read_jsonl(path: str | Path) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """(objects, unreadable) of a JSONL file; `unreadable` holds (1-based line number, text) pairs."""
    rows: list[dict[str, Any]] = []
    bad: list[tuple[int, str]] = []
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, an int of 5000 digits, nesting 100k deep
            obj = None
        if isinstance(obj, dict):
            rows.append(obj)
        else:
            bad.append((i + 1, line))
    return rows, bad


def finite(x: Any) -> Any:
    """A copy of `x` with every non-finite float replaced by None (recursively through dicts and lists)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def _plain(x: Any) -> Any:
    """Fallback for objects json cannot encode: numpy/torch scalars, sets, paths."""
    if hasattr(x, "item"):
        return x.item()
    if isinstance(x, (set, frozenset)):
        return sorted(x, key=str)
    return str(x)


def dumps(obj: dict[str, Any]) -> str:
    """One strict JSON line (no NaN/Infinity tokens), without the newline."""
    # round-trip through the fallback first so numpy/torch scalars are floats before `finite` sees them
    plain = json.loads(json.dumps(obj, default=_plain))
    return json.dumps(finite(plain), allow_nan=False)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write through a temporary file beside `path` (PATH.tmp<pid>) and a rename: readers and a kill see the old
    or the new file, never a torn one, and two writers never share a temporary."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
