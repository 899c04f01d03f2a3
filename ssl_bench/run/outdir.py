"""The output folder: the marker that says ssl-bench made it, which suite it holds, when a run may continue it,
and the only deletion ssl-bench ever does.

`run` writes MARKER into every output folder it creates (with the suite's name). `--overwrite` removes only the
entries ssl-bench writes (OWN_ENTRIES), only in a folder that carries the marker, and never while a worker's
claim there is fresh. A folder without the marker is continued only when it holds results ssl-bench recognises
by their content and the user says `--resume --adopt` (adopt.py); --overwrite of an adopted folder removes
only what ssl-bench wrote. Every path ssl-bench writes is checked to resolve inside the output folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, NamedTuple

from ssl_bench.errors import UserError
from ssl_bench.jsonl import write_text_atomic
from ssl_bench.run import adopt
from ssl_bench.run.ledger import LOCK_FILE, RESULTS_FILE, RESULTS_STATE, UNREADABLE_FILE, now
from ssl_bench.run.legacy import LEDGER_VERSION, MARKER, marker
from ssl_bench.run.locks import claim_timeout_s, is_stale, read_holder, who

# What `ssl-bench run` (and report / plots) write at the top of an output folder; nothing else is deleted.
OWN_ENTRIES = (RESULTS_FILE, UNREADABLE_FILE, LOCK_FILE, "runs", "claims", "plots", "report.html", "suite.yaml",
               "suite_timing.json", "label_subsets", "logs", "matrix.json", "report.html.lock", RESULTS_STATE)
OWN_FOLDERS = ("runs", "claims", "plots", "label_subsets", "logs")


class SuiteId(NamedTuple):
    name: str
    sha256: str

    def __str__(self) -> str:
        return f"'{self.name}' (sha256 {self.sha256[:12]})"


def suite_id(suite: Any) -> SuiteId:
    """The suite's name and the sha256 of what OUT/suite.yaml records for it: its file's bytes, or the effective
    suite when command-line overrides or sweeps changed it (of its settings when it has neither)."""
    from ssl_bench.config.overrides import recorded_text

    text = recorded_text(suite) if hasattr(suite, "path") else None
    blob = text.encode("utf-8") if text is not None else repr(sorted(vars(suite).items(), key=str)).encode()
    return SuiteId(suite.name, hashlib.sha256(blob).hexdigest())


def is_ours(out: Path) -> bool:
    return marker(out) is not None


def has_results(out: Path) -> bool:
    return (out / RESULTS_FILE).exists() or (out / "runs").exists()


def folder_suite(out: Path) -> SuiteId | None:
    """The suite a folder holds: the marker's, else the matrix's (folders of older versions); None if unknown."""
    matrix = _json(out / "matrix.json")
    m = marker(out) or {}
    name = m.get("suite") or matrix.get("suite")
    if not isinstance(name, str):
        return None
    sha = matrix.get("suite_sha256") if matrix.get("suite") == name else None
    return SuiteId(name, sha if isinstance(sha, str) else "?")


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_marker(out: Path, suite: SuiteId, **fields: Any) -> None:
    """Create the marker if there is none (exclusively: of two first workers, one writes it)."""
    from ssl_bench import __version__

    body = json.dumps({"created_by": "ssl-bench", "version": __version__, "created": now(), "suite": suite.name,
                       "ledger": LEDGER_VERSION, **fields,
                       "note": "ssl-bench --overwrite deletes only its own entries here"})
    try:
        fd = os.open(out / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(body)


def rename_suite(out: Path, suite: SuiteId) -> None:
    """After --overwrite: the folder now holds `suite` (the marker keeps what adoption recorded)."""
    write_text_atomic(out / MARKER, json.dumps({**(marker(out) or {}), "suite": suite.name, "ledger": LEDGER_VERSION}))


def check_reusable(out: Path, suite: SuiteId, resume: bool, overwrite: bool, adopting: bool = False) -> bool:
    """Refuse, before anything is written, a folder that a run must not touch. Returns True when the run
    continues the folder's results (as --resume does); False for a new, empty or overwritten folder.

    A plain run (no flag) continues a folder only when ssl-bench created it and the suite file is byte for byte
    the one that last ran there (the README's quickstart run twice); any other folder with results needs
    --resume (continue; for another version of the same suite too) or --overwrite (start over)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; allowed: a folder (new, empty, or written by ssl-bench run)")
    if adopting and not resume:
        raise UserError("--adopt: only with --resume; allowed: ssl-bench run SUITE --out DIR --resume --adopt")
    if not out.is_dir() or not any(out.iterdir()):
        return False
    _check_entry_kinds(out)
    if not is_ours(out):
        return adopt.check_adoptable(out, resume, overwrite, adopting)
    if overwrite:
        refuse_if_live(out)
        return False
    held = folder_suite(out)
    if held is not None and held.name != suite.name:
        raise UserError(f"--out {out}: holds the results of suite {held}; this is suite {suite}; a folder holds one "
                        "suite; allowed: another --out (`ssl-bench table` reads several folders), or --overwrite "
                        "to replace them")
    if not has_results(out) or resume:
        return has_results(out)
    if held is not None and held.sha256 == suite.sha256:
        return True
    raise UserError(f"--out {out}: folder already holds results; allowed: --resume to continue them, "
                    "--overwrite to start over, or another --out")


def _check_entry_kinds(out: Path) -> None:
    for name in OWN_FOLDERS[1:]:  # runs/ is checked with every run folder (`inside`)
        p = out / name
        if p.is_symlink() or (p.exists() and not p.is_dir()):
            kind = "a symlink" if p.is_symlink() else "a file"
            raise UserError(f"--out {out}: {p} is {kind}; allowed: a folder that ssl-bench writes (move it away)")


def refuse_if_live(out: Path) -> None:
    """--overwrite must not clear a folder under a running worker: one line naming it."""
    claims = out / "claims"
    for path in sorted(claims.glob("*.json")) if claims.is_dir() else []:
        holder = read_holder(path)
        if holder and not is_stale(path, holder, claim_timeout_s()):
            beat = holder.get("heartbeat")
            age = f"{time.time() - beat:.0f} s ago" if isinstance(beat, (int, float)) else "just now"
            raise UserError(f"--out {out}: --overwrite refused: run {path.stem} is held by a live worker "
                            f"{who(holder)} (heartbeat {age}); allowed: wait for it (ssl-bench status {out}) or "
                            "stop that worker first")


def clear_own_entries(out: Path) -> list[str]:
    """Delete what ssl-bench wrote in a marked folder; returns the names removed. Symlinks are unlinked,
    never followed. In an adopted folder only what ssl-bench recognises as its own goes (adopt.py)."""
    m = marker(out)
    if m is None:
        raise UserError(f"--out {out}: no {MARKER} marker; ssl-bench deletes only in folders it created")
    if m.get("adopted"):
        return adopt.clear_adopted(out, OWN_ENTRIES, set(m.get("foreign") or []))
    removed = []
    for name in OWN_ENTRIES:
        p = out / name
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)
        else:
            continue
        removed.append(name)
    return removed


def inside(out: Path, path: Path, what: str) -> Path:
    """`path` itself, after checking that it resolves inside `out` (a name from a suite cannot escape)."""
    root, target = os.path.realpath(out), os.path.realpath(path)
    if os.path.commonpath([root, target]) != root:
        raise UserError(f"{what}: {path} resolves outside the output folder {out}; allowed: names of letters, "
                        "digits and . _ + - (no path separators, no leading dot)")
    return path
