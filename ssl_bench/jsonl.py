"""Strict JSON lines: one reader with one policy for unreadable lines, one writer that never emits NaN/Infinity.

Every JSONL file ssl-bench reads (results.jsonl, metrics.jsonl) goes through `read_jsonl`: a line that does not
parse as a JSON object is returned separately with its line number, so the caller decides whether to warn,
set it aside or stop. Writers go through `dumps`, which turns non-finite floats into null: strict readers
(JavaScript, Go, jq --seq) reject the NaN and Infinity tokens that Python's json module writes by default.
Files are written only through `atomic_writer` / `write_text_atomic` / `write_bytes_atomic` / `append_text` /
`open_new`, none of which follows a symlink at the destination.
"""
from __future__ import annotations

import errno
import json
import math
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator


def read_jsonl(path: str | Path) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """(objects, unreadable) of a JSONL file; `unreadable` holds (1-based line number, text) pairs."""
    rows: list[dict[str, Any]] = []
    bad: list[tuple[int, str]] = []
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    whole = _as_one_array(text)
    if whole is not None:
        return whole, bad
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


def _as_one_array(text: str) -> list[dict[str, Any]] | None:
    """Every line's object, parsed as one JSON array, or None when any line is not one whole object. One parse
    shares the key strings of all rows (json's memo lasts one document): at 100k result rows that halved the
    memory the rows take (1.0 -> 0.45 GB) and took a third less time."""
    body = text.strip()
    if not body:
        return []
    try:
        found = json.loads("[" + body.replace("\n", ",") + "]")
    except ValueError:
        return None
    lines = body.count("\n") + 1  # no blank line inside: ",," would not have parsed
    if len(found) != lines or not all(isinstance(r, dict) for r in found):
        return None  # two objects on one line, or one split over two: judged line by line
    return found


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


# Every file ssl-bench writes in an output folder goes through the functions below, which never follow a final
# symlink: new files are created with O_EXCL | O_NOFOLLOW (a planted link at the name makes the create fail
# instead of writing through it) and then renamed over the destination (rename replaces a link, never follows
# it); appends open with O_NOFOLLOW and replace a link by a new file.
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _create(path: str) -> int:
    """A descriptor on a new regular file at `path`; whatever was there (a leftover temporary, a link) is
    unlinked first, never followed."""
    try:
        return os.open(path, _NEW, 0o644)
    except FileExistsError:
        os.unlink(path)
        return os.open(path, _NEW, 0o644)


@contextmanager
def atomic_writer(path: str | os.PathLike, binary: bool = True, fsync: bool = False) -> Iterator[IO]:
    """A file object on PATH.tmp<pid>, renamed over PATH when the block ends: readers and a kill see the old or
    the new file, never a torn one, and a link at PATH is replaced, not written through. On an error the
    temporary is removed and the error propagates."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = _create(tmp)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: str | os.PathLike, text: str, fsync: bool = False) -> None:
    """Write `text` through a temporary beside `path` and a rename (see atomic_writer)."""
    with atomic_writer(path, binary=False, fsync=fsync) as f:
        f.write(text)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, fsync: bool = False) -> None:
    with atomic_writer(path, fsync=fsync) as f:
        f.write(data)


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append to a log or side file of ssl-bench's own. A symlink (or anything but a regular file) at `path` is
    replaced by a new file, never written through."""
    path = os.fspath(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        fd = _create(path)
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device planted under our name
        os.close(fd)
        fd = _create(path)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(text)


def open_new(path: str | os.PathLike, binary: bool = False) -> IO:
    """A new file at `path` (a log written as it goes, a temporary): what was there, a link included, is
    replaced, never written through."""
    fd = _create(os.fspath(path))
    return os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")


def own_folder(path: str | os.PathLike) -> Path:
    """`path` as a real folder of ssl-bench's own (plots/ of an output folder): a symlink or file planted under
    the name is replaced by an empty folder, so nothing is written through it."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path


def one_line(value: Any, limit: int = 200) -> str:
    """`value` as text fit for one line of a log: control characters (newlines included) escaped, at most
    `limit` characters. For strings that come from files (a claim's host), which must not add lines."""
    text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(value))
    return text if len(text) <= limit else text[:limit] + "..."
