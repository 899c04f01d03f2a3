"""Locks and run claims on a shared output folder, built on atomic file creation and rename.

Why not fcntl/flock alone: on network filesystems (NFS, Lustre, GPFS) advisory locks are optional, slow or
silently local to one client. What these primitives rely on instead:
- `open(path, O_CREAT | O_EXCL)` creates a file atomically: of several processes, exactly one succeeds
  (NFSv3+ and every local filesystem guarantee this);
- `os.rename` onto another name in the same folder is atomic, so a stale lock or claim is broken by renaming
  it aside: of several processes that try, exactly one succeeds, the others get FileNotFoundError;
- the clocks of the machines sharing the folder agree to within a few seconds (NTP); staleness is judged from
  the holder's last heartbeat timestamp written inside the file, with timeouts far larger than any skew.
"""
from __future__ import annotations

import json
import math
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ssl_bench.jsonl import append_text, one_line, write_text_atomic

LOCK_STALE_S = 120.0  # results appends hold the lock for well under a second; a holder this old has died


def claim_timeout_s() -> float:
    """Seconds without heartbeat after which a claim's owner counts as dead (SSL_BENCH_CLAIM_TIMEOUT_S)."""
    return float(os.environ.get("SSL_BENCH_CLAIM_TIMEOUT_S", "600"))


def heartbeat_interval_s() -> float:
    return float(os.environ.get("SSL_BENCH_HEARTBEAT_S", "30"))


def _identity() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex}


def _create_exclusive(path: Path, content: dict[str, Any]) -> bool:
    """Create `path` holding `content` if it does not exist; False if another process has it."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(content, f)
    return True


def read_holder(path: Path) -> dict[str, Any] | None:
    """The JSON a lock or claim file holds; {} for a file being written or unreadable, None when absent."""
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _age(path: Path, holder: dict[str, Any]) -> float:
    """Seconds since the holder last showed life: its heartbeat, else the file's modification time."""
    beat = holder.get("heartbeat", holder.get("time"))
    if not _number(beat):
        try:
            beat = path.stat().st_mtime
        except FileNotFoundError:
            return 0.0
    return time.time() - float(beat)


def bogus(holder: dict[str, Any], timeout_s: float) -> str | None:
    """Why a holder's fields cannot be a live worker's (then it counts as stale), or None. A heartbeat that is
    not a finite number or lies ahead of now by more than the timeout, or a start time that is not a number,
    would otherwise make every other worker wait for it forever."""
    for key in ("heartbeat", "time", "started"):
        if key in holder and not _number(holder[key]):
            return f"{key} is not a finite number"
    beat = holder.get("heartbeat", holder.get("time"))
    if _number(beat) and beat - time.time() > timeout_s:
        return "heartbeat in the future"
    return None


def who(holder: dict[str, Any]) -> str:
    """`host:pid` of a holder, escaped: the fields come from a file anyone may have written."""
    return f"{one_line(holder.get('host'), 80)}:{one_line(holder.get('pid'), 20)}"


def _dead(holder: dict[str, Any]) -> bool:
    """A holder on this host whose process is gone (killed) need not wait for its heartbeat to expire."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    if holder["pid"] == os.getpid():
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def is_stale(path: Path, holder: dict[str, Any], timeout_s: float) -> bool:
    return _dead(holder) or bogus(holder, timeout_s) is not None or _age(path, holder) > timeout_s


def _break(path: Path) -> bool:
    """Move a stale lock or claim aside; True for the one process whose rename won."""
    try:
        os.rename(path, path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}"))
    except FileNotFoundError:
        return False
    return True


class FileLock:
    """A short-lived exclusive lock: `with FileLock(folder / "results.jsonl.lock"): ...`."""

    def __init__(self, path: str | os.PathLike, timeout_s: float = 600.0, stale_s: float = LOCK_STALE_S):
        self.path, self.timeout_s, self.stale_s = Path(path), timeout_s, stale_s
        self.me = _identity()

    def __enter__(self) -> "FileLock":
        deadline, wait = time.monotonic() + self.timeout_s, 0.01
        while not _create_exclusive(self.path, {**self.me, "time": time.time()}):
            holder = read_holder(self.path)
            if holder is not None and is_stale(self.path, holder, self.stale_s) and _break(self.path):
                print(f"warning: broke a stale lock {self.path} held by {who(holder)}", file=sys.stderr)
                continue
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.path}: still locked by {who(holder or {})} after {self.timeout_s:.0f} s")
            time.sleep(wait)
            wait = min(wait * 2, 0.5)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.held():  # a lock broken as stale while we were paused is another process's now
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def held(self) -> bool:
        """Whether the lock file is still this holder's (it may have been broken as stale and taken)."""
        holder = read_holder(self.path)
        return bool(holder) and holder.get("token") == self.me["token"]


class Claim:
    """Exclusive ownership of one run by one worker, kept alive by a heartbeat thread.

    A claim file holds host, pid, start time, a heartbeat timestamp and free-form progress (epoch). A claim
    whose heartbeat is older than `timeout_s` belongs to a dead worker and is taken over; the takeover is
    logged to stderr and to claims/takeovers.log.
    """

    def __init__(self, folder: str | os.PathLike, name: str, timeout_s: float | None = None,
                 heartbeat_s: float | None = None):
        self.folder = Path(folder)
        self.path = self.folder / f"{name}.json"
        self.timeout_s = claim_timeout_s() if timeout_s is None else timeout_s
        self.heartbeat_s = heartbeat_interval_s() if heartbeat_s is None else heartbeat_s
        self.me = {**_identity(), "started": time.time()}
        self.progress: dict[str, Any] = {}
        self.lost = threading.Event()  # set once another worker owns the run (we were paused past the timeout)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        """True if this worker now owns the run; False if a live worker holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        while not _create_exclusive(self.path, self._content()):
            holder = read_holder(self.path)
            if holder is None:
                continue  # released between our two looks: try again
            if not is_stale(self.path, holder, self.timeout_s) or not _break(self.path):
                return False
            self._log_takeover(holder)
        self._thread = threading.Thread(target=self._beat, name=f"claim-{self.path.stem}", daemon=True)
        self._thread.start()
        return True

    def held_by(self) -> dict[str, Any] | None:
        return read_holder(self.path)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.owned():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def owned(self) -> bool:
        holder = read_holder(self.path)
        return bool(holder) and holder.get("token") == self.me["token"]

    def _content(self) -> dict[str, Any]:
        return {**self.me, "heartbeat": time.time(), "progress": self.progress}

    def check(self) -> None:
        """Raise ClaimLost when another worker owns the run now: called before each epoch's checkpoint and each
        result write, so a worker that was paused past the timeout stops instead of working beside the new owner."""
        if self.lost.is_set() or not self.owned():
            self.lost.set()
            raise ClaimLost(f"lost the claim on {self.path.stem} to {who(self.held_by() or {})} (no heartbeat for "
                            f"over {self.timeout_s:.0f} s); this worker stopped working on it")

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if not self.owned():  # taken over while this worker was stalled: stop claiming it
                self.lost.set()
                print(f"warning: lost the claim {self.path} to another worker", file=sys.stderr)
                return
            write_text_atomic(self.path, json.dumps(self._content()))

    def _log_takeover(self, old: dict[str, Any]) -> None:
        why = bogus(old, self.timeout_s) or ("process gone" if _dead(old) else
                                             f"no heartbeat for {_age(self.path, old):.0f} s")
        line = (f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {who(self.me)} took over {self.path.stem} from "
                f"{who(old)} ({why})")
        print(f"warning: {line}", file=sys.stderr)
        with FileLock(self.folder / "takeovers.log.lock"):
            append_text(self.folder / "takeovers.log", line + "\n")


class ClaimLost(Exception):
    """Another worker took over the run this worker was working on."""
