"""Run a whole suite: prepare the output folder, walk the matrix, print the table."""
from __future__ import annotations

import json
import time
from pathlib import Path


from ssl_bench import distributed as dist
from ssl_bench.errors import UserError
from ssl_bench.jsonl import write_text_atomic
from ssl_bench.run.adopt import adopt_marker_fields
from ssl_bench.run.outdir import (OWN_ENTRIES, check_reusable, clear_own_entries, folder_suite, inside, is_ours,
                                  rename_suite, suite_id, write_marker)
from ssl_bench.run.stages import RunEnv
from ssl_bench.run.ledger import ResultsStore
from ssl_bench.config.overrides import recorded_text, resume_note
from ssl_bench.config.run_spec import expand
from ssl_bench.engine.device import amp_name, resolve_amp, resolve_device
from ssl_bench.run.status import write_matrix
from ssl_bench.run.worker import say, work_through
from ssl_bench.config.spec import Suite


def default_out_dir(suite: Suite) -> Path:
    return Path(suite.output["dir"] or Path("results") / suite.name)


def prepare_out_dir(out: Path, suite: Suite, resume: bool, overwrite: bool, adopting: bool = False) -> bool:
    """A fresh run never mixes with old results: continue them with --resume (or a plain run of the very same
    suite file) or replace them with --overwrite. Returns whether the run continues the folder's results.

    --overwrite deletes only ssl-bench's own entries in a folder carrying its marker (see outdir.py)."""
    ident = suite_id(suite)
    continuing = check_reusable(out, ident, resume, overwrite, adopting)  # every rank checks, before any write
    dist.barrier()  # no rank may see the folder half-prepared by rank 0 (no marker yet: "not ours")
    if dist.is_main():
        if overwrite and is_ours(out):
            removed = clear_own_entries(out)
            if removed:
                print(f"--overwrite: removed {', '.join(removed)} from {out}", flush=True)
            rename_suite(out, ident)
        out.mkdir(parents=True, exist_ok=True)
        fields = adopt_marker_fields(out, OWN_ENTRIES) | {"ledger": 1} if not is_ours(out) and adopting else {}
        write_marker(out, ident, **fields)
        held = folder_suite(out)
        if held is not None and held.name != ident.name:  # another suite's first worker won the marker
            check_reusable(out, ident, True, False)
        ResultsStore(out).repair()
        text = recorded_text(suite)  # the file, or the effective suite when the command line changed it
        if text is not None:  # temp + rename: concurrent workers never see a half-copied suite.yaml
            old = out / "suite.yaml"
            note = resume_note(old.read_text(encoding="utf-8", errors="replace"), text) if old.is_file() else None
            if note:
                print(note, flush=True)
            write_text_atomic(out / "suite.yaml", text)
    dist.barrier()
    return continuing


def run_suite(suite: Suite, out: Path, resume: bool = False, overwrite: bool = False, progress: bool = True,
              wait: bool = True, adopting: bool = False) -> Path:
    """Pretrain and evaluate every run of the suite that no other worker holds; with `wait`, also wait for (and
    take over, when their owner died) the runs other workers hold, so the matrix is complete on return."""
    if suite.pretrain["batch_size"] % dist.world_size():
        raise UserError(f"pretrain.batch_size: bad value {suite.pretrain['batch_size']}; allowed: a multiple of the "
                        f"number of processes ({dist.world_size()}), since it is the global batch")
    device = resolve_device(suite.pretrain["device"])
    amp_dtype = resolve_amp(suite.pretrain["amp"], device)
    runs = expand(suite, amp=amp_name(amp_dtype))  # the hash sees the precision actually trained with
    for spec in runs:  # names come from the suite: none may lead outside the output folder
        inside(out, out / "runs" / spec.run_id, f"run folder of {spec.method.label}")
    resume = prepare_out_dir(out, suite, resume, overwrite, adopting)
    env = RunEnv(suite, out, ResultsStore(out), device, amp_dtype, resume, progress)
    t0 = time.perf_counter()
    say(f"suite '{suite.name}': {len(runs)} runs x {len(suite.evaluations)} evaluations -> {out} "
         f"(device {device}, amp {env.amp_dtype or 'off'}, {dist.world_size()} process(es))")
    if dist.is_main():
        write_matrix(out, suite, runs, suite_id(suite).sha256)
    work_through(runs, env, wait=wait)
    if dist.is_main():
        env.store.refresh_view()  # results.jsonl holds every row landed so far, by any worker
        write_text_atomic(out / "suite_timing.json", json.dumps({"wall_time_s": time.perf_counter() - t0}))
    return out
