"""Per-image evidence of a result row: saved beside the run, read back by tables for bootstrap intervals and tests.

While an evaluation runs, ssl_bench.metrics.collect_evidence keeps what each classification_metrics call saw.
`save_evidence` then writes each call's arrays as one compressed file,
OUT/runs/<run_id>/predictions/<eval_key>__<protocol>__<dataset>[__<label_fraction>].npz, and records its path,
relative to OUT, in the `predictions` field of every row whose value that call returned (matched by identity of
the float object: a value the evaluation rounded or recomputed is not the measured one, and gets no file).
On by default; a suite turns it off with `output: {predictions: false}`.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ssl_bench.errors import DISK_ERRNOS
from ssl_bench.jsonl import atomic_writer, own_folder
from ssl_bench.metrics import Evidence

PREDICTIONS_DIR = "predictions"
FIELD = "predictions"  # the row's (record extra's) key holding the file's path relative to OUT
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def evidence_name(eval_key: str, row: dict[str, Any]) -> str:
    """<eval_key>__<protocol>__<dataset>[__<label_fraction>].npz, as a safe file name."""
    parts = [eval_key, row.get("protocol") or "", row.get("eval_dataset") or ""]
    if row.get("label_fraction") is not None:
        parts.append(f"{float(row['label_fraction']):g}")
    return "__".join(_UNSAFE.sub("-", str(p)) for p in parts) + ".npz"


def save_evidence(rows: list[dict[str, Any]], calls: list[Evidence], run_dir: str | Path, eval_key: str) -> None:
    """Write the evidence of the calls that produced `rows` and set `predictions` in those rows (in place)."""
    if not calls:
        return
    owner = {id(v): i for i, call in enumerate(calls) for v in call.values.values()}
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        i = owner.get(id(row.get("value")))
        if i is not None and calls[i].values.get(row.get("metric")) is row.get("value"):
            groups.setdefault(i, []).append(row)
    run_dir = Path(run_dir)
    names: set[str] = set()
    for i, group in groups.items():
        name = evidence_name(eval_key, group[0])
        while name in names:  # the same protocol / dataset twice in one evaluation: keep both
            name = name[:-4] + "_.npz"
        names.add(name)
        try:
            _write(run_dir / PREDICTIONS_DIR / name, calls[i].arrays)
        except OSError as exc:
            if exc.errno in DISK_ERRNOS:
                raise  # the results could not be written either: stop as run_evaluation does
            print(f"warning: per-image predictions not saved ({exc}); tables show [n/a] for these rows",
                  file=sys.stderr, flush=True)
            continue
        rel = f"runs/{run_dir.name}/{PREDICTIONS_DIR}/{name}"
        for row in group:
            row.setdefault("extra", {})[FIELD] = rel


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Atomically (temporary file + rename): a killed write never leaves a torn .npz under the final name."""
    own_folder(path.parent)
    with atomic_writer(path) as f:  # never through a link planted at the name
        np.savez_compressed(f, **arrays)


def load_evidence(out_dir: str | Path, rel: str) -> dict[str, np.ndarray] | None:
    """The arrays of OUT/<rel>, or None when the path leaves OUT or the file is missing or unreadable."""
    root = Path(out_dir).resolve()
    path = (root / rel).resolve()
    if root not in path.parents:
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError):
        return None
