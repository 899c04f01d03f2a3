"""One (run, evaluation) batch of result rows as its own file: OUT/runs/<run_id>/results/<eval key>.json.

A batch file is written whole (temporary + rename) by the worker holding the run's claim, so it is either
absent or complete; it is the source of truth for what is done. Its verdict:
- "absent": never written; "unreadable": not JSON, or not a batch (set aside by the claim holder, never deleted);
- "invalid: <why>": parses, but a row is missing, tampered or not a measurement (a value that is not a finite
  number, an unknown status, a protocol its evaluation does not declare): recomputed like an absent one;
- "failed": whole and valid, with a failed row (retried on every --resume); "done": whole, valid, no failure.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from ssl_bench.jsonl import dumps, one_line, own_folder, write_text_atomic

FORMAT = "ssl-bench-batch/1"
RESULTS_DIR = "results"
STATUSES = ("ok", "collapsed", "failed", "skipped")
# what every row of a batch carries (the tables need all of these); run_id / eval_key must match the batch
ROW_FIELDS = ("run_id", "eval_key", "method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric",
              "value", "seed", "status")
_KEY = re.compile(r"^([A-Za-z0-9_+.-]{1,100}):([0-9a-f]{8})$")


def file_name(eval_key: str) -> str:
    """`knn:1a2b3c4d` -> `knn-1a2b3c4d.json` (no colon: portable file names); any other key by its hash."""
    m = _KEY.match(eval_key)
    if m:
        return f"{m.group(1)}-{m.group(2)}.json"
    return f"key-{hashlib.sha256(eval_key.encode()).hexdigest()[:16]}.json"


def batch_path(out: Path, run_id: str, eval_key: str) -> Path:
    return out / "runs" / run_id / RESULTS_DIR / file_name(eval_key)


def declared_protocols(eval_key: str) -> tuple[str, ...] | None:
    """The protocols the batch's evaluation declares, or None when it is not registered here or declares none
    (then any protocol name is accepted)."""
    from ssl_bench.registry import EVALUATIONS

    name = eval_key.split(":", 1)[0]
    try:
        cls = EVALUATIONS.get(name)
    except KeyError:
        return None
    names = tuple(p.name for p in getattr(cls, "protocols", ()))
    return names or None


def row_problem(row: Any, run_id: str, eval_key: str, declared: tuple[str, ...] | None) -> str | None:
    """Why `row` is not a valid row of the batch (run_id, eval_key), or None."""
    if not isinstance(row, dict):
        return "a row that is not an object"
    missing = [k for k in ROW_FIELDS if k not in row]
    if missing:
        return f"a row without {', '.join(missing)}"
    if row["run_id"] != run_id or row["eval_key"] != eval_key:
        return "a row of another run or evaluation"
    if row["status"] not in STATUSES:
        return f"status {str(row['status'])[:40]!r}"
    if not isinstance(row["seed"], int) or isinstance(row["seed"], bool):
        return f"seed {str(row['seed'])[:40]!r}"
    if row["status"] in ("ok", "collapsed"):
        v = row["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"{one_line(row['metric'], 40)} value {str(v)[:40]!r}"
        if not isinstance(row["metric"], str) or not row["metric"]:
            return f"metric {str(row['metric'])[:40]!r}"
        if declared is not None and row["protocol"] not in declared:
            return f"protocol {str(row['protocol'])[:40]!r} (evaluation declares {', '.join(declared)})"
    return None


def judge(data: Any, run_id: str, eval_key: str) -> tuple[str, list[dict[str, Any]]]:
    """(verdict, rows) of a parsed batch file; rows are returned only for "done" and "failed"."""
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("rows"), list):
        return "unreadable", []
    if data.get("run_id") != run_id or data.get("eval_key") != eval_key:
        return "invalid: the file names another run or evaluation", []
    rows, declared = data["rows"], declared_protocols(eval_key)
    if not rows:
        return "invalid: no rows", []
    for row in rows:
        problem = row_problem(row, run_id, eval_key, declared)
        if problem is not None:
            return f"invalid: {problem}", []
        if row.get("batch") != data.get("batch"):
            return "invalid: a row of another batch", []
        if row.get("batch_rows", len(rows)) != len(rows):
            return f"invalid: {len(rows)} of its {str(row.get('batch_rows'))[:12]} rows", []
    return ("failed" if any(r["status"] == "failed" for r in rows) else "done"), rows


def read_batch(path: Path, run_id: str, eval_key: str) -> tuple[str, list[dict[str, Any]]]:
    """(verdict, rows) of the batch file at `path` (see the module docstring)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "absent", []
    except (ValueError, IsADirectoryError):  # UnicodeDecodeError is a ValueError
        return "unreadable", []
    try:
        data = _strict_loads(text)
    except ValueError:
        return "unreadable", []
    return judge(data, run_id, eval_key)


def _refuse(token: str) -> Any:
    raise ValueError(f"non-standard JSON token {token}")


def _strict_loads(text: str) -> Any:
    """JSON without NaN / Infinity tokens (ssl-bench never writes them: a file holding one was edited)."""
    return json.loads(text, parse_constant=_refuse)


def read_any(path: Path) -> tuple[str, list[dict[str, Any]], str, str]:
    """(verdict, rows, run_id, eval_key) of a batch file found on disk (the key is read from the file)."""
    try:
        data = _strict_loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return "unreadable", [], "", ""
    if not isinstance(data, dict) or not isinstance(data.get("eval_key"), str):
        return "unreadable", [], "", ""
    run_id, key = path.parent.parent.name, data["eval_key"]
    if path.name != file_name(key):
        return "invalid: the file name does not match its evaluation", [], run_id, key
    verdict, rows = judge(data, run_id, key)
    return verdict, rows, run_id, key


def write_batch(path: Path, run_id: str, eval_key: str, batch: str, rows: list[dict[str, Any]]) -> None:
    """Write the batch whole (fsynced temporary, then rename): a kill leaves the old file or the new one."""
    own_folder(path.parent)  # a link planted as runs/<run>/results is replaced, never written through
    body = ",\n".join(dumps(r) for r in rows)
    head = json.dumps({"format": FORMAT, "run_id": run_id, "eval_key": eval_key, "batch": batch})[:-1]
    write_text_atomic(path, f'{head}, "rows": [\n{body}\n]}}\n', fsync=True)
