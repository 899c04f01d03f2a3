"""OUT/results.jsonl as the compiled view of the batch files (batches.py): one strict JSON row per line, in the
order the batches were written, rebuilt whole and renamed into place, so it is always readable.

The view is never the source of truth: what is done is read from the batch files. It is rebuilt
- when a batch lands, if the rows landed by this process since its last rebuild are at least as many as the
  view then held (a doubling rule: rebuilds cost O(rows) each but happen ever more rarely, so their cost per
  landed row is O(1) amortised, and the view always holds at least half the rows between rebuilds); a worker
  that finds another one rebuilding skips its turn instead of waiting;
- at the end of every worker's pass over the matrix, and by every reader (`table`, `report`, `compare`,
  `status`, `load_results`) when it is stale.
Staleness is judged without reading a batch: RESULTS_STATE records a fingerprint of the batch files (name,
inode, size, mtime) and of the view itself; a rename or a new batch changes it. Rebuilds run under a short
lock (results.jsonl.lock); one whose lock was broken as stale while it was paused does not publish its
snapshot (the token is checked before the rename), and nothing is lost either way since batches are the truth.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import IO, Any, Iterator

from ssl_bench.jsonl import atomic_writer, write_text_atomic
from ssl_bench.run.batches import RESULTS_DIR, read_any
from ssl_bench.run.locks import FileLock

RESULTS_FILE = "results.jsonl"
RESULTS_STATE = "results.view.json"
LOCK_FILE = "results.jsonl.lock"


class ViewBusy(Exception):
    """Another process is rebuilding the view (raised only when not waiting)."""


def batch_entries(out: Path) -> list[tuple[int, str, os.stat_result]]:
    """(mtime_ns, path, stat) of every batch file under OUT/runs/*/results/, oldest first."""
    found = []
    for run in _scandir(out / "runs"):
        if not run.is_dir(follow_symlinks=False):
            continue
        for f in _scandir(Path(run.path) / RESULTS_DIR):
            if f.name.endswith(".json") and f.is_file(follow_symlinks=False):
                st = f.stat(follow_symlinks=False)
                found.append((st.st_mtime_ns, f.path, st))
    found.sort(key=lambda e: (e[0], e[1]))
    return found


def _scandir(path: Path) -> Iterator[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            yield from it
    except (FileNotFoundError, NotADirectoryError):
        return


def fingerprint(entries: list[tuple[int, str, os.stat_result]]) -> str:
    h = hashlib.sha1()
    for mtime, path, st in entries:
        h.update(f"{path}\0{st.st_ino}\0{st.st_size}\0{mtime}\n".encode())
    return h.hexdigest()


def compiled_rows(entries: list[tuple[int, str, os.stat_result]]) -> Iterator[dict[str, Any]]:
    """Rows of every whole, valid batch (done or failed), oldest batch first; a warning counts the others."""
    skipped = 0
    for _, path, _ in entries:
        verdict, rows, _, _ = read_any(Path(path))
        if verdict in ("done", "failed"):
            yield from rows
        else:
            skipped += 1
    if skipped:
        print(f"warning: {skipped} batch file(s) unreadable or invalid, left out of {RESULTS_FILE}; "
              "`ssl-bench run --resume` sets them aside and recomputes them", file=sys.stderr)


class View:
    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.path = self.out / RESULTS_FILE
        self.state_path = self.out / RESULTS_STATE

    def state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def is_fresh(self, entries: list | None = None) -> bool:
        state = self.state()
        entries = batch_entries(self.out) if entries is None else entries
        return bool(state) and state.get("fingerprint") == fingerprint(entries) and state.get("view") == self._own()

    def _own(self) -> list[int] | None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return None
        return [st.st_ino, st.st_size, st.st_mtime_ns]

    def refresh(self, wait: bool = True, lock_timeout_s: float = 600.0) -> int:
        """Rebuild the view if it is stale; returns the number of rows it holds. Raises ViewBusy when `wait` is
        false and another process holds the lock."""
        lock = FileLock(self.out / LOCK_FILE, timeout_s=lock_timeout_s if wait else 0.0)
        try:
            lock.__enter__()
        except TimeoutError:
            if wait:
                raise
            raise ViewBusy() from None
        try:
            return self.rebuild_locked(lock)
        finally:
            lock.__exit__()

    def rebuild_locked(self, lock: FileLock) -> int:
        """The rebuild itself; the caller holds `lock`."""
        for tmp in self.out.glob(f"{RESULTS_FILE}.tmp*"):
            tmp.unlink(missing_ok=True)  # a dead rebuild's: only the lock holder writes one
        entries = batch_entries(self.out)
        if self.is_fresh(entries):
            return int(self.state().get("rows", 0))
        n = 0
        try:
            with atomic_writer(self.path, binary=False, fsync=True) as f:
                n = _write_rows(f, entries)
                if not lock.held():  # broken as stale while we were paused: a newer view may be in place
                    raise _Discard()
        except _Discard:
            print(f"warning: {self.path}: not rebuilt (the lock was taken over while this process was paused)",
                  file=sys.stderr)
            return n
        write_text_atomic(self.state_path, json.dumps({"fingerprint": fingerprint(entries), "view": self._own(),
                                                       "rows": n, "batches": len(entries)}))
        return n


class _Discard(Exception):
    pass


def _write_rows(f: IO, entries: list) -> int:
    n = 0
    for row in compiled_rows(entries):
        f.write(json.dumps(row, allow_nan=False) + "\n")
        n += 1
    return n
