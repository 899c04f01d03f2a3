"""Folders without ssl-bench's marker that hold results of an older ssl-bench (or a copy of them).

ssl-bench continues such a folder only when it recognises its own results there by their content (a
results.jsonl whose rows carry ssl-bench's fields, run folders holding ssl-bench's run.json) and the user says
`--resume --adopt`; a `runs/` folder alone (TensorBoard's default) is not a sign of ssl-bench. Adopting records
in the marker every entry ssl-bench did not recognise (`foreign`), and --overwrite of an adopted folder removes
only what ssl-bench wrote: never a foreign entry, never a run folder without ssl-bench's files in it (a
TensorBoard run made later), never a log file of another name.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from ssl_bench.errors import UserError
from ssl_bench.run.legacy import has_ssl_bench_rows, is_run_dir
from ssl_bench.run.view import RESULTS_FILE

# Files ssl-bench writes at the top of a folder, and how to tell that one there is its own: a foreign file
# under one of these names would be overwritten, so a folder holding one is not adopted.
RUN_FILES = ("run.json", "final.pt", "checkpoint.pt", "metrics.jsonl", "metrics.csv", "results", "plan.json")
OWN_LOG = re.compile(r"^(worker\d+\.log|slurm)$")
OWN_PLOTS = tuple(f"{n}.png" for n in ("label_fraction", "transfer", "training", "compute"))  # report.plots


def _has(path: Path, *words: str) -> bool:
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:65536]
    except OSError:
        return False
    return all(w in head for w in words)


RECOGNISE = {
    RESULTS_FILE: has_ssl_bench_rows,
    "matrix.json": lambda p: _has(p, '"runs"', '"evaluations"'),
    "suite_timing.json": lambda p: _has(p, '"wall_time_s"'),
    "report.html": lambda p: _has(p, "ssl-bench report"),
    "suite.yaml": lambda p: _has(p, "methods", "evaluations"),
}


def recognised(out: Path) -> bool:
    """Whether the folder holds results that ssl-bench wrote (by content, not by names)."""
    runs = out / "runs"
    return has_ssl_bench_rows(out / RESULTS_FILE) or (
        runs.is_dir() and not runs.is_symlink() and any(is_run_dir(p) for p in runs.iterdir()))


def check_adoptable(out: Path, resume: bool, overwrite: bool, adopting: bool) -> bool:
    """For a non-empty folder without the marker: True when it may be adopted now, else one-line refusal."""
    if overwrite:
        raise UserError(f"--out {out}: --overwrite refused: the folder has no .ssl-bench marker, so ssl-bench did "
                        "not create it and will not delete anything in it; allowed: a new or empty folder, or one "
                        "written by ssl-bench run")
    if not recognised(out):  # writing here would later let --overwrite remove a `runs/` that is the user's
        raise UserError(f"--out {out}: folder is not empty and was not created by ssl-bench; allowed: a new or "
                        "empty folder, or one written by ssl-bench run")
    if not (resume and adopting):
        raise UserError(f"--out {out}: holds ssl-bench results but no .ssl-bench marker (an older ssl-bench, or a "
                        "copy); allowed: --resume --adopt to continue them (--overwrite will then remove only what "
                        "ssl-bench wrote there), or another --out")
    for name, test in RECOGNISE.items():
        p = out / name
        if p.exists() and not (p.is_file() and not p.is_symlink() and test(p)):
            raise UserError(f"--out {out}: --adopt refused: {p} is not ssl-bench's and ssl-bench would write over "
                            "it; allowed: move it away first, or another --out")
    return True


def foreign_entries(out: Path, own_entries: tuple[str, ...]) -> list[str]:
    """Entries under ssl-bench's names that it did not write (relative paths), recorded when adopting."""
    foreign = []
    for name in own_entries:
        p = out / name
        if not p.exists() and not p.is_symlink():
            continue
        if p.is_dir() and not p.is_symlink():
            for child in sorted(p.iterdir()):
                if not _own_child(name, child):
                    foreign.append(f"{name}/{child.name}")
        elif name not in RECOGNISE and name != "results.unreadable.jsonl":
            foreign.append(name)
    return foreign


def _own_child(folder: str, child: Path) -> bool:
    if folder == "runs":
        return is_run_dir(child) or (child.is_dir() and not child.is_symlink()
                                     and any((child / f).exists() for f in RUN_FILES))
    if folder == "logs":
        return bool(OWN_LOG.match(child.name))
    if folder == "plots":
        return child.name in OWN_PLOTS
    if folder == "claims":
        return child.suffix in (".json", ".lock", ".log") or ".stale-" in child.name
    return folder == "label_subsets" and child.suffix == ".txt"


def adopt_marker_fields(out: Path, own_entries: tuple[str, ...]) -> dict:
    return {"adopted": True, "foreign": foreign_entries(out, own_entries)}


def clear_adopted(out: Path, own_entries: tuple[str, ...], foreign: set[str]) -> list[str]:
    """--overwrite in an adopted folder: remove ssl-bench's own entries, keep every foreign one."""
    removed = []
    for name in own_entries:
        p = out / name
        if name in foreign or not (p.exists() or p.is_symlink()):
            continue
        if p.is_dir() and not p.is_symlink():
            gone = [c for c in sorted(p.iterdir()) if f"{name}/{c.name}" not in foreign and _own_child(name, c)]
            for child in gone:
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            if not any(p.iterdir()):
                p.rmdir()
            if gone:
                removed.append(name)
        else:
            p.unlink()
            removed.append(name)
    return removed
