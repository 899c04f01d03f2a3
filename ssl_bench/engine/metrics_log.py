"""Per-run metrics log, one row per epoch, as JSONL or CSV; truncated on resume so no epoch repeats."""
from __future__ import annotations

import contextlib
import csv
import sys
from pathlib import Path
from typing import Any

from ssl_bench.jsonl import atomic_writer, dumps, read_jsonl


class MetricsLog:
    def __init__(self, run_dir: Path, fmt: str = "jsonl"):
        self.fmt = fmt
        self.path = Path(run_dir) / f"metrics.{fmt}"

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        if self.fmt == "jsonl":
            rows, bad = read_jsonl(self.path)  # the one JSONL policy: unreadable lines skipped, with a warning
            if bad:
                print(f"warning: {self.path}: skipped {len(bad)} unreadable line(s)", file=sys.stderr)
            return rows
        text = self.path.read_text()
        return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(text.splitlines())]

    def keep_before(self, epoch: int) -> None:
        """Drop rows of epochs >= epoch (they will be trained again after a resume)."""
        rows = [r for r in self.rows() if int(r["epoch"]) < epoch]
        self._write_named(rows)

    def append(self, row: dict[str, Any]) -> None:
        self._write_named(self.rows() + [row])

    def _write_named(self, rows: list[dict[str, Any]]) -> None:
        """A full disk fails inside write() or close() with no file name: the error names the log instead."""
        try:
            self._write_all(rows)
        except OSError as exc:
            with contextlib.suppress(OSError):  # no log-sized temporary left on a full disk
                self.path.with_name(self.path.name + ".tmp").unlink(missing_ok=True)
            if exc.filename is not None:
                raise
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc

    def _write_all(self, rows: list[dict[str, Any]]) -> None:
        with atomic_writer(self.path, binary=False) as f:  # temporary + rename: never through a link
            if self.fmt == "jsonl":
                f.writelines(dumps(r) + "\n" for r in rows)  # strict JSON: no NaN tokens
            elif rows:
                keys = list(dict.fromkeys(k for r in rows for k in r))
                w = csv.DictWriter(f, fieldnames=keys)
                w.writeheader()
                w.writerows(rows)


def _num(v: str) -> Any:
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v
