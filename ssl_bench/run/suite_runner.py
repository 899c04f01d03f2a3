"""Run a whole suite: prepare the output folder, walk the matrix, print the table."""
from __future__ import annotations

import json
import time
from pathlib import Path


from ssl_bench import distributed as dist
from ssl_bench.errors import UserError
from ssl_bench.jsonl import write_text_atomic
from ssl_bench.run.outdir import check_reusable, clear_own_entries, inside, is_ours, write_marker
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


def prepare_out_dir(out: Path, suite: Suite, resume: bool, overwrite: bool) -> None:
    """A fresh run never mixes with old results: continue them with --resume or replace them with --overwrite.

    --overwrite deletes only ssl-bench's own entries in a folder carrying its marker (see outdir.py)."""
    check_reusable(out, resume, overwrite)  # every rank checks, before anything is written
    if dist.is_main():
        if overwrite and is_ours(out):
            removed = clear_own_entries(out)
            if removed:
                print(f"--overwrite: removed {', '.join(removed)} from {out}", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out)
        ResultsStore(out).repair()
        text = recorded_text(suite)  # the file, or the effective suite when the command line changed it
        if text is not None:  # temp + rename: concurrent workers never see a half-copied suite.yaml
            old = out / "suite.yaml"
            note = resume_note(old.read_text(encoding="utf-8", errors="replace"), text) if old.is_file() else None
            if note:
                print(note, flush=True)
            write_text_atomic(out / "suite.yaml", text)
    dist.barrier()


def run_suite(suite: Suite, out: Path, resume: bool = False, overwrite: bool = False, progress: bool = True,
              wait: bool = True) -> Path:
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
    prepare_out_dir(out, suite, resume, overwrite)
    env = RunEnv(suite, out, ResultsStore(out), device, amp_dtype, resume, progress)
    t0 = time.perf_counter()
    say(f"suite '{suite.name}': {len(runs)} runs x {len(suite.evaluations)} evaluations -> {out} "
         f"(device {device}, amp {env.amp_dtype or 'off'}, {dist.world_size()} process(es))")
    if dist.is_main():
        write_matrix(out, suite, runs)
    work_through(runs, env, wait=wait)
    if dist.is_main():
        (out / "suite_timing.json").write_text(json.dumps({"wall_time_s": time.perf_counter() - t0}))
    return out
