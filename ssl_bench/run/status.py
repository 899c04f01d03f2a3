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

from ssl_bench.config.run_spec import RunSpec, eval_key
from ssl_bench.errors import UserError
from ssl_bench.jsonl import one_line, read_jsonl, write_text_atomic
from ssl_bench.run import legacy
from ssl_bench.run.batches import batch_path, read_batch
from ssl_bench.run.legacy import SAFE_NAME
from ssl_bench.run.locks import claim_timeout_s, is_stale, read_holder, who
from ssl_bench.run.view import batch_entries

MATRIX_FILE = "matrix.json"


def write_matrix(out: Path, suite: Any, runs: list[RunSpec], suite_sha256: str = "") -> None:
    """Record the runs and evaluations this suite expects (atomic: workers may write it at the same time)."""
    matrix = {"suite": suite.name, "suite_sha256": suite_sha256,
              "evaluations": [eval_key(e.name, e.params) for e in suite.evaluations],
              "runs": [{"run_id": s.run_id, "method": s.method.label, "backbone": s.backbone.label,
                        "dataset": s.dataset.name, "seed": s.seed, "epochs": s.method.epochs,
                        "budget": getattr(s.method, "budget", None)} for s in runs]}
    write_text_atomic(out / MATRIX_FILE, json.dumps(matrix, indent=1))


def _epochs(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return read_jsonl(path)[0] if path.is_file() else []


def _batches(out: Path, run_id: str, keys: list[str], old: dict | None) -> list[tuple[str, list[dict]]]:
    """(verdict, rows) of each evaluation of the run: from its batch files, or a legacy results.jsonl."""
    if old is not None:
        found = [old.get((run_id, k)) for k in keys]
        return [("absent", []) if g is None else
                ("failed" if any(r.get("status") == "failed" for r in g) else "done", g) for g in found]
    return [read_batch(batch_path(out, run_id, k), run_id, k) for k in keys]


def _run_state(out: Path, run: dict[str, Any], keys: list[str], old: dict | None) -> dict[str, Any]:
    batches = _batches(out, run["run_id"], keys, old)
    logged = _epochs(out / "runs" / run["run_id"])
    state = {**run, "epochs_done": len(logged), "epoch_times": [r.get("time_s") for r in logged
                                                                if isinstance(r.get("time_s"), (int, float))]}
    failed = [r for verdict, rows in batches if verdict == "failed" for r in rows if r.get("status") == "failed"]
    claim_path = out / "claims" / f"{run['run_id']}.json"
    holder = read_holder(claim_path)
    if all(verdict == "done" for verdict, _ in batches):
        return {**state, "state": "done"}
    if holder and not is_stale(claim_path, holder, claim_timeout_s()):
        started = holder.get("started")
        since = time.strftime("%H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
        return {**state, "state": "running", "who": who(holder), "since": since}
    if failed:
        return {**state, "state": "failed", "reason": one_line(failed[0].get("error") or "", 120)}
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


def read_matrix(out: Path) -> dict[str, Any]:
    """DIR/matrix.json, checked to have the shape ssl-bench writes (one line naming what is wrong)."""
    path = out / MATRIX_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found; allowed: a folder where `ssl-bench run` has started a suite")
    try:
        matrix = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise UserError(f"{path}: unreadable; run the suite again with --resume to rewrite it") from None
    problem = matrix_problem(matrix)
    if problem:
        raise UserError(f"{path}: not a matrix ssl-bench wrote ({problem}); run the suite again with --resume to "
                        "rewrite it")
    claims = out / "claims"
    if claims.exists() and not claims.is_dir():
        raise UserError(f"{claims}: is not a folder; allowed: the claims folder ssl-bench writes (move it away)")
    return matrix


def matrix_problem(m: Any) -> str | None:
    if not isinstance(m, dict):
        return "not an object"
    if not isinstance(m.get("evaluations"), list) or not all(isinstance(k, str) for k in m["evaluations"]):
        return "evaluations is not a list of names"
    if not isinstance(m.get("runs"), list):
        return "runs is not a list"
    for i, r in enumerate(m["runs"]):
        if not isinstance(r, dict) or not isinstance(r.get("run_id"), str) or not SAFE_NAME.match(r["run_id"]):
            return f"runs[{i}] has no safe run_id"
        if not isinstance(r.get("method"), str) or not isinstance(r.get("epochs", 0), (int, type(None))):
            return f"runs[{i}]: method or epochs of the wrong type"
    return None


def folder_status(out: str | os.PathLike) -> list[dict[str, Any]]:
    out = Path(out)
    matrix = read_matrix(out)
    old = legacy.complete_batches(legacy.rows(out)) if legacy.is_legacy(out) else None
    return [_run_state(out, run, matrix["evaluations"], old) for run in matrix["runs"]]


def other_runs(out: str | os.PathLike, states: list[dict[str, Any]]) -> list[str]:
    """Run folders holding results that the matrix does not list (runs of an earlier version of the suite)."""
    listed = {s["run_id"] for s in states}
    return sorted({Path(p).parent.parent.name for _, p, _ in batch_entries(Path(out))} - listed)


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
        if s["state"] in ("running", "pending") and isinstance(s["epochs"], int):
            per = times.get(s["method"]) or every
            left += max(s["epochs"] - s["epochs_done"], 0) * sum(per) / len(per)
    workers = max(1, sum(s["state"] == "running" for s in states))
    return left / workers


def render_status(states: list[dict[str, Any]], others: list[str] | None = None, suite: str = "") -> str:
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
    tail = [f"{len(states)} runs: {summary}{when}"]
    if others:
        tail.append(f"and {len(others)} run folder(s) with results outside suite {suite}'s matrix (an earlier "
                    f"version of the suite): {', '.join(others[:5])}{' ...' if len(others) > 5 else ''}")
    return "\n".join(lines + tail)
