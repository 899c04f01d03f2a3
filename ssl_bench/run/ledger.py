"""The results ledger of an output folder, shared safely by concurrent workers.

Each evaluation of a run writes its rows as one batch file, OUT/runs/<run_id>/results/<eval key>.json
(batches.py), written whole (temporary + rename) by the worker that holds the run's claim. A write costs
O(rows of the batch) and takes no global lock; two workers never write one (run, evaluation) twice, since it has
one file and a key already done is not written again. Every row carries `batch` (an id) and `batch_rows`.
What is done is read from the batch files alone: a batch is done when it is whole, each of its rows is valid
and none failed; failed rows are retried on every --resume, and an unreadable or tampered batch is set aside
(renamed, never deleted) and recomputed.

OUT/results.jsonl is the compiled view of the batches that tables, users and peers read (view.py). A folder
written before batches existed holds results.jsonl only: it is read as it is, and migrated into batches on
--resume (legacy.py).
"""
from __future__ import annotations

import math
import os
import platform
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from ssl_bench.jsonl import read_jsonl
from ssl_bench.run import legacy
from ssl_bench.run.batches import (RESULTS_DIR, ROW_FIELDS, batch_path, declared_protocols, read_any, read_batch,
                                   row_problem, write_batch)
from ssl_bench.run.locks import FileLock, claim_timeout_s, is_stale, read_holder
from ssl_bench.run.view import LOCK_FILE, RESULTS_FILE, RESULTS_STATE, View, ViewBusy, batch_entries

UNREADABLE_FILE = legacy.UNREADABLE_FILE
__all__ = ["LOCK_FILE", "RESULTS_FILE", "RESULTS_STATE", "UNREADABLE_FILE", "ResultsStore", "now", "versions"]


def versions() -> dict[str, str]:
    import sklearn
    import timm
    import torch
    import torchvision

    from ssl_bench import __version__

    return {"ssl_bench": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "timm": timm.__version__, "sklearn": sklearn.__version__, "python": platform.python_version()}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _key(row: dict[str, Any]) -> tuple[str, str]:
    return str(row.get("run_id", "")), str(row.get("eval_key", ""))


class ResultsStore:
    def __init__(self, out_dir: str | os.PathLike):
        self.dir = Path(out_dir)
        self.path = self.dir / RESULTS_FILE
        self.view = View(self.dir)
        self._landed = 0  # rows this process landed since its last view rebuild
        self._view_rows: int | None = None  # rows the view held at that rebuild

    # --- what is done: one batch file per question ---------------------------------------------------------
    def verdict(self, run_id: str, eval_key: str) -> str:
        """"done", "failed", "absent", "unreadable" or "invalid: ..." (batches.py) of one (run, evaluation)."""
        return read_batch(batch_path(self.dir, run_id, eval_key), run_id, eval_key)[0]

    def done(self, run_id: str, eval_keys: Iterable[str]) -> set[str]:
        """The evaluation keys of `run_id` that need no more work; reads only those batch files."""
        return {k for k in eval_keys if self.verdict(run_id, k) == "done"}

    def done_keys(self) -> set[tuple[str, str]]:
        """Every (run_id, eval_key) that needs no more work, over the whole folder (reads every batch)."""
        if self.is_legacy():
            return legacy.done_keys(legacy.rows(self.dir))
        found = set()
        for _, path, _ in batch_entries(self.dir):
            verdict, _, run_id, key = read_any(Path(path))
            if verdict == "done":
                found.add((run_id, key))
        return found

    def run_rows(self, run_id: str) -> list[dict[str, Any]]:
        """Rows of the run's whole, valid batches (done or failed)."""
        if self.is_legacy():
            return [r for r in legacy.rows(self.dir) if r.get("run_id") == run_id]
        rows = []
        for path in sorted((self.dir / "runs" / run_id / RESULTS_DIR).glob("*.json")):
            verdict, batch, _, _ = read_any(path)
            rows += batch if verdict in ("done", "failed") else []
        return rows

    # --- reading every row ------------------------------------------------------------------------------
    def is_legacy(self) -> bool:
        return legacy.is_legacy(self.dir)

    def load(self) -> list[dict[str, Any]]:
        """Every row the folder holds, as tables read them (the view, rebuilt first when stale)."""
        rows, bad = self.read_view()
        if bad:
            print(f"warning: {self.path}: {len(bad)} unreadable line(s) ({', '.join(str(n) for n, _ in bad[:5])}) "
                  "skipped", file=sys.stderr)
        return rows

    def read_view(self) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
        """(rows, unreadable lines) of results.jsonl, rebuilt first when stale; in a folder this process cannot
        write (a colleague's), the rows are compiled from the batches in memory."""
        if legacy.is_sharded(self.dir) and not self.view.is_fresh():
            try:
                self.view.refresh(wait=True, lock_timeout_s=60.0)
            except (OSError, TimeoutError):
                from ssl_bench.run.view import compiled_rows

                return list(compiled_rows(batch_entries(self.dir))), []
        if not self.path.is_file():
            return [], []
        return read_jsonl(self.path)

    # --- writing -------------------------------------------------------------------------------------------
    def append(self, records: Iterable[dict[str, Any]], guard: Callable[[], None] | None = None) -> int:
        """Write each (run_id, eval_key) group of `records` as one batch file, replacing an older batch that is
        not done (failed, incomplete, unreadable). A key that is done already (another worker finished it) is
        not written again. `guard` (the run claim's check) runs before each write and raises when this worker
        no longer owns the run. Returns the number of rows written."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in records:
            groups.setdefault(_key(r), []).append(r)
        written = 0
        for (run_id, key), group in groups.items():
            declared = declared_protocols(key)
            group = [_strict(r, run_id, key, declared) for r in group]
            path = batch_path(self.dir, run_id, key)
            if read_batch(path, run_id, key)[0] == "done":
                continue
            if guard is not None:
                guard()
            batch = uuid.uuid4().hex[:12]
            write_batch(path, run_id, key, batch, [{**r, "batch": batch, "batch_rows": len(group)} for r in group])
            written += len(group)
        self._landed += written
        if written:
            self._maybe_refresh_view()
        return written

    def _maybe_refresh_view(self) -> None:
        """Rebuild the view when this process has landed at least as many rows as it held (view.py)."""
        if self._view_rows is None:
            self._view_rows = int(self.view.state().get("rows", 0) or 0)
        if self._landed < self._view_rows:
            return
        try:
            self._view_rows = self.view.refresh(wait=False)
            self._landed = 0
        except ViewBusy:
            pass  # another worker is rebuilding; ours comes at a later landing or at the end of the pass

    def refresh_view(self) -> int:
        """Bring results.jsonl up to date (the end of a worker's pass); returns its row count."""
        self._view_rows, self._landed = self.view.refresh(wait=True), 0
        return self._view_rows

    # --- repair --------------------------------------------------------------------------------------------
    def repair(self) -> None:
        """On --resume: migrate a folder that holds results.jsonl only into batch files (once, under the view
        lock), and rebuild the view (which removes the temporaries of dead rebuilds)."""
        with FileLock(self.dir / LOCK_FILE) as lock:
            if self.is_legacy():
                legacy.migrate(self.dir)
            self._remove_dead_batch_temporaries()
            self.view.rebuild_locked(lock)

    def _remove_dead_batch_temporaries(self) -> None:
        """A batch temporary belongs to the worker holding its run's claim; with no live claim, it is dead."""
        for tmp in self.dir.glob(f"runs/*/{RESULTS_DIR}/*.json.tmp*"):
            run_id = tmp.parent.parent.name
            claim = self.dir / "claims" / f"{run_id}.json"
            holder = read_holder(claim)
            if holder is None or is_stale(claim, holder, claim_timeout_s()):
                tmp.unlink(missing_ok=True)

    def repair_run(self, run_id: str) -> None:
        """Called by the worker that has just claimed `run_id`: remove its dead batch temporaries and set aside
        (rename, never delete) batch files that are unreadable or invalid, with one warning each."""
        folder = self.dir / "runs" / run_id / RESULTS_DIR
        for tmp in folder.glob("*.json.tmp*"):
            tmp.unlink(missing_ok=True)  # only the claim holder writes here, and that is us
        for path in sorted(folder.glob("*.json")):
            verdict, _, _, _ = read_any(path)
            if verdict in ("done", "failed"):
                continue
            kind = "unreadable" if verdict == "unreadable" else "invalid"
            aside = path.with_name(f"{path.name}.{kind}-{uuid.uuid4().hex[:8]}")
            os.replace(path, aside)
            why = "" if kind == "unreadable" else f" ({verdict.split(': ', 1)[1]})"
            print(f"warning: {path}: {kind} batch{why} moved to {aside.name}; its evaluation is recomputed",
                  file=sys.stderr, flush=True)


def _strict(rec: dict[str, Any], run_id: str, key: str, declared: tuple[str, ...] | None) -> dict[str, Any]:
    """A row whose metric value is NaN/inf is not a measurement: record it as failed, never as a number. So is
    an ok row that a batch could not hold (a value that is not a number, a protocol its evaluation does not
    declare): written as it is, the batch would be judged invalid and recomputed on every --resume."""
    v = rec.get("value")
    if isinstance(v, float) and not math.isfinite(v) and rec.get("status") == "ok":
        return {**rec, "value": None, "status": "failed", "error": f"metric value was {v}"}
    problem = row_problem(rec, run_id, key, declared) if rec.get("status") in ("ok", "collapsed") else None
    if problem is not None and all(k in rec for k in ROW_FIELDS):
        return {**rec, "value": None, "status": "failed", "error": f"not a valid result row: {problem}"}
    return rec
