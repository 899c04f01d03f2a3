"""Checkpoint files: atomic writes, loads that never run code, and bad files moved aside instead of crashing.

A checkpoint holds tensors, numbers, strings, lists and dicts only (model, optimizer and scaler state dicts,
epoch/step counters, a stats dict), so it is always read with torch.load(weights_only=True): a crafted file
whose pickle would call a function is refused, never executed.
"""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

import torch

from ssl_bench import distributed as dist
from ssl_bench.jsonl import atomic_writer

# What a crash leaves in a run folder: save_atomic's, pretrain_run's (run.json) and MetricsLog's temporaries.
RUN_TMP_PATTERNS = ("checkpoint.pt.tmp*", "final.pt.tmp*", "run.json.tmp*", "budget.json.tmp*", "metrics.*.tmp*")


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """Write to `<name>.tmp<pid>` in the same folder, then rename. A write error raises a plain OSError
    naming `path` (torch.save on a file name wraps it in a RuntimeError), and the temporary is removed."""
    path = Path(path)
    try:
        with atomic_writer(path, fsync=True) as f:  # a Python file object: torch.save lets its OSError through
            torch.save(obj, f)
    except OSError as exc:  # atomic_writer removed the temporary
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def load(path: str | os.PathLike, device: torch.device | str = "cpu") -> Any:
    """The checkpoint's contents; raises on a missing, truncated, garbage or code-carrying file."""
    return torch.load(path, map_location=device, weights_only=True)


def describe_error(exc: BaseException) -> str:
    """One short line saying why a checkpoint did not load."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in text:
        detail = next((ln.strip() for ln in text.splitlines() if "GLOBAL" in ln or "Unsupported" in ln), "")
        return f"refused to unpickle code ({detail or 'not a weights-only file'})"
    if isinstance(exc, EOFError):
        return "empty or truncated file"
    first = (text.splitlines() or [""])[0][:160]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def set_aside(path: str | os.PathLike, reason: str, fallback: str) -> None:
    """Rename a bad checkpoint to `<name>.bad` (kept for inspection) and say so in one line on stderr.
    Rank 0 acts; the other ranks read the same file, reach the same verdict and stay silent."""
    path = Path(path)
    if not dist.is_main():
        return
    bad = path.with_name(path.name + ".bad")
    try:
        os.replace(path, bad)
        where = f"moved to {bad.name}"
    except FileNotFoundError:
        where = "already gone"
    print(f"warning: {path}: unusable ({reason}); {where}; {fallback}", file=sys.stderr, flush=True)


def load_or_set_aside(path: str | os.PathLike, fallback: str, device: torch.device | str = "cpu") -> Any | None:
    """The checkpoint at `path`, or None when there is none or it does not load (then it is set aside)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return load(path, device)
    except Exception as exc:  # noqa: BLE001 - any load failure means the same: this file cannot be used
        set_aside(path, describe_error(exc), fallback)
        return None


def clean_run_tmp(run_dir: str | os.PathLike) -> list[Path]:
    """Remove temporaries a crashed writer left in a run folder (a checkpoint-sized file each). Call it when
    the run starts: only the process that holds the run writes there. Returns what was removed."""
    removed = []
    for pattern in RUN_TMP_PATTERNS:
        for tmp in Path(run_dir).glob(pattern):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
