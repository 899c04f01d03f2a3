"""The output folder: the marker that says ssl-bench made it, and the only deletion ssl-bench ever does.

`run` writes MARKER into every output folder it creates. `--overwrite` removes only the entries ssl-bench
writes (OWN_ENTRIES), and only in a folder that carries the marker; anything else in the folder stays, and a
folder without the marker that holds anything is refused. Every path ssl-bench writes is checked to resolve
inside the output folder.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ssl_bench.errors import UserError
from ssl_bench.run.ledger import LOCK_FILE, RESULTS_FILE, UNREADABLE_FILE, now

MARKER = ".ssl-bench"
# What `ssl-bench run` (and report / plots) write at the top of an output folder; nothing else is deleted.
OWN_ENTRIES = (RESULTS_FILE, UNREADABLE_FILE, LOCK_FILE, "runs", "claims", "plots", "report.html", "suite.yaml",
               "suite_timing.json", "label_subsets", "logs", "matrix.json", "report.html.lock")


def is_ours(out: Path) -> bool:
    return (out / MARKER).is_file()


def has_results(out: Path) -> bool:
    return (out / RESULTS_FILE).exists() or (out / "runs").exists()


def write_marker(out: Path) -> None:
    if not is_ours(out):
        from ssl_bench import __version__

        (out / MARKER).write_text(json.dumps({"created_by": "ssl-bench", "version": __version__, "created": now(),
                                              "note": "ssl-bench --overwrite deletes only its own entries here"}))


def check_reusable(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before anything is written, a folder that a run must not touch."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; allowed: a folder (new, empty, or written by ssl-bench run)")
    if overwrite and out.is_dir() and any(out.iterdir()) and not is_ours(out):
        raise UserError(f"--out {out}: --overwrite refused: the folder has no {MARKER} marker, so ssl-bench did not "
                        "create it and will not delete anything in it; allowed: a new or empty folder, or one "
                        "written by ssl-bench run")
    foreign = out.is_dir() and any(out.iterdir()) and not is_ours(out) and not has_results(out)
    if foreign:  # writing here would later let --overwrite remove a `runs/` or `plots/` that is the user's
        raise UserError(f"--out {out}: folder is not empty and was not created by ssl-bench; allowed: a new or "
                        "empty folder, or one written by ssl-bench run")
    if has_results(out) and not (resume or overwrite):
        raise UserError(f"--out {out}: folder already holds results; allowed: --resume to continue them, "
                        "--overwrite to start over, or another --out")


def clear_own_entries(out: Path) -> list[str]:
    """Delete what ssl-bench wrote in a marked folder; returns the names removed. Symlinks are unlinked,
    never followed."""
    if not is_ours(out):
        raise UserError(f"--out {out}: no {MARKER} marker; ssl-bench deletes only in folders it created")
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
