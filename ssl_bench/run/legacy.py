"""Folders written before batch files existed: OUT/results.jsonl was the ledger itself (rows appended as
batches with `batch` / `batch_rows`). They are read as they are, and migrated into batch files on --resume:
each (run, evaluation)'s last batch becomes its batch file (an incomplete or tampered one is judged like any
batch, so it is recomputed), unreadable lines go to results.unreadable.jsonl with a warning, and results.jsonl
becomes the compiled view. Also: how ssl-bench recognises results it wrote, by their content."""
from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from ssl_bench.jsonl import append_text, read_jsonl
from ssl_bench.run.batches import ROW_FIELDS, batch_path, write_batch
from ssl_bench.run.view import RESULTS_FILE, RESULTS_STATE

UNREADABLE_FILE = "results.unreadable.jsonl"
MARKER = ".ssl-bench"
LEDGER_VERSION = 2  # the marker's "ledger": 2 means batch files are the truth
SAFE_NAME = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,199}$")


def marker(out: Path) -> dict[str, Any] | None:
    """The marker's JSON ({} for an old, empty or unreadable marker), or None without one (a symlink is none)."""
    path = out / MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_sharded(out: Path) -> bool:
    """Batch files are this folder's truth (it was created or migrated by this version)."""
    return (out / RESULTS_STATE).is_file() or (marker(out) or {}).get("ledger", 0) == LEDGER_VERSION


def is_legacy(out: Path) -> bool:
    return (out / RESULTS_FILE).is_file() and not is_sharded(out)


def rows(out: Path) -> list[dict[str, Any]]:
    """Readable rows of a legacy results.jsonl (read-only)."""
    path = out / RESULTS_FILE
    return read_jsonl(path)[0] if path.is_file() else []


def last_batches(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(run_id, eval_key) -> the rows of its last batch (rows without a batch id form one batch)."""
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault((str(r.get("run_id", "")), str(r.get("eval_key", ""))), []).append(r)
    out = {}
    for key, group in by_key.items():
        batch = group[-1].get("batch")
        out[key] = [r for r in group if r.get("batch") == batch] if batch is not None else group
    return out


def complete_batches(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Keys whose last batch holds as many rows as it says (legacy rows without a batch id count as whole)."""
    return {k: g for k, g in last_batches(rows).items()
            if g[-1].get("batch_rows") is None or len(g) == g[-1].get("batch_rows")}


def done_keys(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {k for k, g in complete_batches(rows).items() if not any(r.get("status") == "failed" for r in g)}


def migrate(out: Path) -> int:
    """Write a batch file for each (run, evaluation) of a legacy results.jsonl that has none yet; returns how
    many. Rows whose run id could not be a folder name are set aside with the unreadable lines."""
    path = out / RESULTS_FILE
    found, bad = read_jsonl(path)
    aside = [text for _, text in bad]
    written = 0
    for (run_id, key), group in last_batches(found).items():
        if not SAFE_NAME.match(run_id) or not key:
            aside += [json.dumps(r) for r in group]
            continue
        target = batch_path(out, run_id, key)
        if target.exists():
            continue
        batch = str(group[-1].get("batch") or "legacy-" + hashlib.sha256(f"{run_id}\0{key}".encode()).hexdigest()[:8])
        size = group[-1].get("batch_rows", len(group))
        write_batch(target, run_id, key, batch, [{**r, "batch": batch, "batch_rows": size} for r in group])
        written += 1
    if aside:
        side = out / UNREADABLE_FILE
        append_text(side, "".join(text + "\n" for text in aside))
        lines = ", ".join(str(n) for n, _ in bad[:5]) or "-"
        print(f"warning: {path}: moved {len(aside)} unreadable line(s) ({lines}) to {side}", file=sys.stderr)
    print(f"{path}: migrated {written} evaluation batch(es) into runs/<run>/results/ (results.jsonl is now "
          "compiled from them)", file=sys.stderr)
    return written


def has_ssl_bench_rows(path: Path, max_bytes: int = 1 << 20) -> bool:
    """Whether a results.jsonl holds a row ssl-bench wrote (its fields), looking at its first MiB."""
    try:
        with open(path, "rb") as f:
            head = f.read(max_bytes).decode("utf-8", errors="replace")
    except OSError:
        return False
    for line in head.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and all(k in row for k in (*ROW_FIELDS, "config_hash", "versions")):
            return True
    return False


def is_run_dir(path: Path) -> bool:
    """Whether `path` is a run folder ssl-bench wrote: it holds a run.json naming it with its config."""
    card = path / "run.json"
    if path.is_symlink() or card.is_symlink() or not card.is_file():
        return False
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("run_id") == path.name and isinstance(data.get("config"), dict)
