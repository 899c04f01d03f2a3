"""OUT/results.jsonl: the ledger of finished evaluation rows, shared safely by concurrent workers.

Each evaluation of a run writes its rows as one batch: every row carries `batch` (an id) and `batch_rows`
(how many rows the batch holds), so a batch missing a row (a torn last line) is seen as incomplete and
recomputed. Writes happen under a lock file (see locks.py) as read -> filter -> write temp -> rename, so a kill
leaves the old or the new file, never a torn one, and two workers never write the same (run, evaluation) twice.
Lines that do not parse are moved to results.unreadable.jsonl with a warning, never silently dropped.
"""
from __future__ import annotations

import math
import os
import platform
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from ssl_bench.jsonl import dumps, read_jsonl
from ssl_bench.run.locks import FileLock

RESULTS_FILE = "results.jsonl"
UNREADABLE_FILE = "results.unreadable.jsonl"
LOCK_FILE = "results.jsonl.lock"


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


def complete_batches(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(run_id, eval_key) -> its rows, for keys whose rows form a whole batch (legacy rows without a batch id
    count as whole: they were written by one atomic rename)."""
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault(_key(r), []).append(r)
    whole = {}
    for key, group in by_key.items():
        size = group[-1].get("batch_rows")
        batch = group[-1].get("batch")
        same = [r for r in group if r.get("batch") == batch]
        if size is None or len(same) == size:
            whole[key] = same if batch is not None else group
    return whole


class ResultsStore:
    def __init__(self, out_dir: str | os.PathLike):
        self.dir = Path(out_dir)
        self.path = self.dir / RESULTS_FILE
        self.lock = FileLock(self.dir / LOCK_FILE)

    def load(self) -> list[dict[str, Any]]:
        """Readable rows (read-only: unreadable lines are only reported here, set aside by `repair`)."""
        if not self.path.exists():
            return []
        rows, bad = read_jsonl(self.path)
        if bad:
            print(f"warning: {self.path}: {len(bad)} unreadable line(s) ({', '.join(str(n) for n, _ in bad[:5])}) "
                  "skipped", file=sys.stderr)
        return rows

    def repair(self) -> None:
        """Move unreadable lines to results.unreadable.jsonl and remove temp files of dead writers."""
        with self.lock:
            for tmp in self.dir.glob(f"{RESULTS_FILE}.tmp*"):
                tmp.unlink()  # only a writer holding the lock has one open, and we hold it
            if self.path.exists():
                self._rewrite(self._read_setting_aside(), [])

    def done_keys(self) -> set[tuple[str, str]]:
        """(run_id, eval_key) pairs that need no more work: a whole batch with no failed row.

        Failed rows are retried on every --resume (a dataset placed since, a transient error); collapsed rows
        are a measured outcome and stay.
        """
        return {k for k, rows in complete_batches(self.load()).items()
                if not any(r.get("status") == "failed" for r in rows)}

    def append(self, records: Iterable[dict[str, Any]]) -> int:
        """Write each (run_id, eval_key) group of `records` as one batch, replacing that key's older rows
        (an incomplete batch or failed rows). A key another worker completed meanwhile is not written again.
        Returns the number of rows written."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in records:
            groups.setdefault(_key(r), []).append(_strict(r))
        if not groups:
            return 0
        with self.lock:
            rows = self._read_setting_aside()
            done = {k for k, g in complete_batches(rows).items() if not any(r.get("status") == "failed" for r in g)}
            new: list[dict[str, Any]] = []
            for key, group in groups.items():
                if key in done:
                    continue
                batch = uuid.uuid4().hex[:12]
                new += [{**r, "batch": batch, "batch_rows": len(group)} for r in group]
            keys = {_key(r) for r in new}
            self._rewrite([r for r in rows if _key(r) not in keys], new)
        return len(new)

    def _read_setting_aside(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows, bad = read_jsonl(self.path)
        if bad:
            side = self.dir / UNREADABLE_FILE
            with open(side, "a", encoding="utf-8") as f:
                f.writelines(text + "\n" for _, text in bad)
            lines = ", ".join(str(n) for n, _ in bad[:5])
            print(f"warning: {self.path}: moved {len(bad)} unreadable line(s) ({lines}) to {side}", file=sys.stderr)
        return rows

    def _rewrite(self, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
        tmp = self.path.with_name(f"{RESULTS_FILE}.tmp{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(dumps(r) + "\n" for r in old + new)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def _strict(rec: dict[str, Any]) -> dict[str, Any]:
    """A row whose metric value is NaN/inf is not a measurement: record it as failed, never as a number."""
    v = rec.get("value")
    if isinstance(v, float) and not math.isfinite(v) and rec.get("status") == "ok":
        return {**rec, "value": None, "status": "failed", "error": f"metric value was {v}"}
    return rec
