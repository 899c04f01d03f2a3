"""`ssl-bench status DIR`: where a suite stands — done, running (who, which epoch, since when), failed (why),
pending — and an ETA from the epoch times measured so far.

The matrix comes from DIR/matrix.json, which every worker writes when it starts (the run ids depend on the
precision resolved on the training machine, so the login node that asks for status must not recompute them).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ssl_bench.errors import UserError
from ssl_bench.jsonl import read_jsonl, write_text_atomic
from ssl_bench.run.locks import claim_timeout_s, is_stale, read_holder
from ssl_bench.run.ledger import ResultsStore, complete_batches
from ssl_bench.config.run_spec import RunSpec, eval_key

MATRIX_FILE = "matrix.json"


def write_matrix(out: Path, suite: Any, runs: list[RunSpec]) -> None:
    """Record the runs and evaluations this suite expects (atomic: workers may write it at the same time)."""
    matrix = {"suite": suite.name, "evaluations": [eval_key(e.name, e.params) for e in suite.evaluations],
              "runs": [{"run_id": s.run_id, "method": s.method.label, "backbone": s.backbone.label,
                        "dataset": s.dataset.name, "seed": s.seed, "epochs": s.method.epochs,
                        "budget": getattr(s.method, "budget", None)} for s in runs]}
    write_text_atomic(out / MATRIX_FILE, json.dumps(matrix, indent=1))


def _epochs(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return read_jsonl(path)[0] if path.exists() else []


def _run_state(out: Path, run: dict[str, Any], keys: list[str], complete: dict) -> dict[str, Any]:
    mine = [complete.get((run["run_id"], k)) for k in keys]
    logged = _epochs(out / "runs" / run["run_id"])
    state = {**run, "epochs_done": len(logged), "epoch_times": [r.get("time_s") for r in logged if r.get("time_s")]}
    failed = [r for batch in mine if batch for r in batch if r.get("status") == "failed"]
    claim_path = out / "claims" / f"{run['run_id']}.json"
    holder = read_holder(claim_path)
    if all(mine) and not failed:
        return {**state, "state": "done"}
    if holder and not is_stale(claim_path, holder, claim_timeout_s()):
        since = time.strftime("%H:%M:%S", time.localtime(holder.get("started", 0)))
        return {**state, "state": "running", "who": f"{holder.get('host')}:{holder.get('pid')}", "since": since}
    if failed:
        return {**state, "state": "failed", "reason": str(failed[0].get("error") or "")[:120]}
    crash = _crash_line(out / "runs" / run["run_id"])
    if crash:  # raised under torchrun, where no rows are recorded: --resume retries it
        return {**state, "state": "failed", "reason": crash[:120], "unrecorded": True}
    return {**state, "state": "pending"}


def _crash_line(run_dir: Path) -> str | None:
    """The reason a run crashed, from the last line of its traceback file (run_record.CRASH_FILE)."""
    from ssl_bench.run.recorder import CRASH_FILE, crash_reason

    try:
        lines = [x for x in (run_dir / CRASH_FILE).read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return None
    return crash_reason(lines[-1]) if lines else None


def folder_status(out: str | os.PathLike) -> list[dict[str, Any]]:
    out = Path(out)
    path = out / MATRIX_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found; allowed: a folder where `ssl-bench run` has started a suite")
    try:
        matrix = json.loads(path.read_text())
    except ValueError:
        raise UserError(f"{path}: unreadable; run the suite again with --resume to rewrite it") from None
    complete = complete_batches(ResultsStore(out).load())
    return [_run_state(out, run, matrix["evaluations"], complete) for run in matrix["runs"]]


def eta_seconds(states: list[dict[str, Any]]) -> float | None:
    """Remaining epochs times the mean measured epoch time of their method (else of all methods), shared
    among the workers running now (at least one). None before any epoch was measured. Runs trained to an
    images-seen or wall-time budget (epochs not known in advance) are not counted."""
    times = {}
    for s in states:
        times.setdefault(s["method"], []).extend(s["epoch_times"])
    every = [t for ts in times.values() for t in ts]
    if not every:
        return None
    left = 0.0
    for s in states:
        if s["state"] in ("running", "pending"):
            per = times.get(s["method"]) or every
            left += max(s["epochs"] - s["epochs_done"], 0) * sum(per) / len(per)
    workers = max(1, sum(s["state"] == "running" for s in states))
    return left / workers


def render_status(states: list[dict[str, Any]]) -> str:
    lines = [f"{'run':<48} {'state':<8} {'epoch':>9}  detail"]
    for s in states:
        detail = {"running": f"{s.get('who')} since {s.get('since')}", "failed": s.get("reason", "")}
        total = s["epochs"] or ("?" if s.get("budget") else 0)  # a budget's epoch count is known once it runs
        lines.append(f"{s['run_id']:<48} {s['state']:<8} {s['epochs_done']:>4}/{total:<4}  "
                     f"{detail.get(s['state'], '')}")
    counts = {k: sum(s["state"] == k for s in states) for k in ("done", "running", "failed", "pending")}
    eta = eta_seconds(states)
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    when = f"; ETA {eta / 60:.1f} min (remaining epochs x measured epoch time)" if eta is not None else ""
    return "\n".join(lines + [f"{len(states)} runs: {summary}{when}"])
