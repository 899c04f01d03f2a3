"""A cooperative worker: walk a suite's matrix, claim each unfinished run, wait for runs other workers hold.

Any number of workers (processes on one machine or on several sharing the output folder) can run the same
suite at once: each run is trained and evaluated by the one worker that claims it (locks.Claim), which writes
its rows as batch files (ledger.py) and stops working on it once another worker has taken its claim over; a
worker that finds nothing left to claim waits until the runs others hold are finished, or takes them over when
their owner died. Under torchrun, rank 0 decides for its group
and broadcasts, so every rank of the group follows the same path through the matrix.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time

from ssl_bench import distributed as dist
from ssl_bench.engine.progress import Bar
from ssl_bench.evaluation import ProgressTask
from ssl_bench.config.run_spec import RunSpec, eval_key
from ssl_bench.run.locks import Claim, ClaimLost, claim_timeout_s, who
from ssl_bench.run.stages import RunEnv, execute_run


def poll_s() -> float:
    """How often a waiting worker looks at the runs others hold (SSL_BENCH_POLL_S)."""
    return float(os.environ.get("SSL_BENCH_POLL_S", "10"))


say = dist.say  # re-exported: progress lines print once per process group


def _share(value: object) -> object:
    """Rank 0's value on every rank of a torchrun group."""
    if not dist.is_dist():
        return value
    import torch.distributed as tdist

    box = [value]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def wanted_keys(spec: RunSpec, env: RunEnv) -> set[str]:
    return {eval_key(e.name, e.params) for e in env.suite.evaluations}


def _all_done(spec: RunSpec, env: RunEnv) -> bool:
    """Reads only this run's batch files: O(evaluations), whatever the size of the folder."""
    wanted = wanted_keys(spec, env)
    return env.store.done(spec.run_id, wanted) == wanted


def _decide(spec: RunSpec, env: RunEnv) -> tuple[str, Claim | None]:
    """("done" | "busy" | "mine", the claim if mine); decided on rank 0 only."""
    if not dist.is_main():
        return "", None
    if _all_done(spec, env):
        return "done", None
    claim = Claim(env.out_dir / "claims", spec.run_id)
    if not claim.acquire():
        return "busy", None
    if _all_done(spec, env):  # finished by its last owner just before we claimed
        claim.release()
        return "done", None
    env.store.repair_run(spec.run_id)  # ours now: set aside what a crash or a hand left broken
    return "mine", claim


def work_once(spec: RunSpec, env: RunEnv, announce_busy: bool) -> str:
    """Do one run if it is unfinished and free; returns "done", "busy" or "ran"."""
    state, claim = _decide(spec, env)
    state = _share(state)
    if state == "done":
        if announce_busy:
            say(f"[skip] {spec.run_id}: every evaluation already recorded")
        return "done"
    if state == "busy":
        if announce_busy:
            holder = Claim(env.out_dir / "claims", spec.run_id).held_by() or {}
            say(f"[busy] {spec.run_id}: held by {who(holder)}")
        return "busy"
    done = {(spec.run_id, k) for k in env.store.done(spec.run_id, wanted_keys(spec, env))}  # every rank reads
    try:  # only we write this run's rows while we hold it (guard.py stops us when we lose it)
        execute_run(spec, dataclasses.replace(env, claim=claim), done)
    except ClaimLost as exc:
        print(f"warning: {exc}", file=sys.stderr, flush=True)
        return "busy"
    finally:
        if claim is not None:
            claim.release()
    return "ran"


def work_through(runs: list[RunSpec], env: RunEnv, wait: bool = True) -> list[str]:
    """Every run of the matrix, once; then wait for runs held by others (taking over expired claims).

    Returns the run ids still held by other workers when `wait` is false (empty when everything is done)."""
    pending, first = list(runs), True
    done = env.store.done_keys() if dist.is_main() else set()
    counted = {s.run_id for s in runs if done >= wanted_keys(s, env)}
    bar = Bar(f"suite {env.suite.name}", len(runs), "run", initial=len(counted), leave=True) \
        if env.progress and dist.is_main() else ProgressTask()  # runs done / total, ETA from the runs run here
    while pending:
        busy = []
        for s in pending:
            state = work_once(s, env, announce_busy=first)
            if state == "busy":
                busy.append(s)
            elif s.run_id not in counted:
                counted.add(s.run_id)
                bar.update()
                bar.note()
        if busy and first:
            say(f"[wait] {len(busy)} run(s) held by other workers; waiting for them to finish "
                 f"(a claim without heartbeat for {claim_timeout_s():.0f} s is taken over)")
        pending, first = busy, False
        if not pending or not wait:
            break
        time.sleep(poll_s())
    bar.close()
    return [s.run_id for s in pending]
