"""`ssl-bench run` (one worker, or N local / SLURM workers through a launcher) and `ssl-bench status`."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ssl_bench.cli.console import complain

if TYPE_CHECKING:
    from ssl_bench.config.spec import Suite

RUN_EPILOG = """exit codes:
  0    every row of the suite is ok
  2    a user error (bad suite, bad --out, pretrain.device cuda:N under torchrun, ...) or an output disk that
       is full, read-only or not writable: one line on stderr names the field or the path and errno
  3    the suite finished but some rows failed or collapsed (one summary line; see OUT/results.jsonl and the
       table); failed rows are retried by --resume
  130  interrupted (Ctrl-C); continue with --resume
  143  terminated by SIGTERM (preemption, scancel, a time limit, kill): handled like Ctrl-C, the run's claim
       and any lock are released and one line is printed; continue with --resume. `--launcher local`
       passes SIGTERM on to its workers.

--resume skips recorded evaluations and continues a half-trained run from its checkpoint.pt. A plain run
(no flag) continues a folder only when ssl-bench created it for this very suite file (same sha256): running
the same command twice reuses what is done and prints the table. A folder without ssl-bench's marker that
holds results of an older ssl-bench is continued only with --resume --adopt. --overwrite is refused while a
worker holds a run there (a claim with a fresh heartbeat). A checkpoint.pt
or final.pt that does not load (truncated, garbage, or a pickle that would run code: checkpoints are read
with weights_only) is renamed to <name>.bad with a warning, and what it held is trained again.
Several `run --resume` processes may share one --out: each run is claimed by one of them, and each waits
for the runs the others hold (taking over a claim whose owner died) before it writes the table and report.
Under torchrun use pretrain.device cuda or auto (rank i takes GPU LOCAL_RANK; pick GPUs with
CUDA_VISIBLE_DEVICES); cuda:N is refused there."""


def _cmd_run(args: argparse.Namespace) -> int:
    from ssl_bench.config.suite import load_suite

    suite = load_suite(args.suite, args.overrides, args.sweep)  # validation first: nothing is written before it passes
    if args.launcher != "none":
        return _launch(args, suite)
    from ssl_bench import distributed as dist
    from ssl_bench.engine.process_group import init_distributed, refuse_pinned_cuda
    from ssl_bench.run.suite_runner import default_out_dir, run_suite

    out = Path(args.out) if args.out else default_out_dir(suite)
    refuse_pinned_cuda(suite.pretrain["device"])  # before init_distributed pins this rank to a GPU
    init_distributed()
    run_suite(suite, out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
              adopting=args.adopt)
    dist.barrier()  # every rank judges the same, complete ledger
    if args.worker:  # a launcher's worker: the launcher prints the table and writes the report once
        return 3 if suite_problems(out) else 0
    return finish(suite, out, dist.is_main())


def finish(suite: Suite, out: Path, main: bool = True) -> int:
    """Table, report and exit code once the matrix is complete (by this worker or together with others)."""
    problems = suite_problems(out)
    if main and suite.output["table"]:
        from ssl_bench.report.tables import summary_table

        print()
        print(summary_table(str(out)))
    if main and suite.output["report"]:
        from ssl_bench.run.locks import FileLock
        from ssl_bench.report.html import write_report

        with FileLock(out / "report.html.lock"):  # workers that finish together write it one at a time
            print(f"report: {write_report(str(out))}")
    if problems:
        complain(problems)
    return 3 if problems else 0


def suite_problems(out: Path) -> str | None:
    """None when every (run, evaluation) of the suite's matrix (OUT/matrix.json) has ok rows, else one line."""
    from ssl_bench.run.status import folder_status

    states = folder_status(out)
    rows = [r for r in _rows_of(out, {s["run_id"] for s in states})]
    failed = sum(r.get("status") not in ("ok", "collapsed", "skipped") for r in rows)  # skipped: not applicable
    collapsed = sum(r.get("status") == "collapsed" for r in rows)
    unfinished = sum(s["state"] in ("pending", "running") or bool(s.get("unrecorded")) for s in states)
    if not (failed or collapsed or unfinished):
        return None
    left = f", {unfinished} run(s) unfinished (see ssl-bench status {out})" if unfinished else ""
    return (f"suite finished with problems: {failed} row(s) failed, {collapsed} collapsed{left}; see "
            f"{out / 'results.jsonl'} and the table")


def _rows_of(out: Path, run_ids: set[str]) -> list[dict]:
    from ssl_bench.run.ledger import ResultsStore

    return [r for r in ResultsStore(out).load() if r.get("run_id") in run_ids]


def _launch(args: argparse.Namespace, suite: Suite) -> int:
    from ssl_bench.config.launcher import LAUNCHER_DEFAULTS
    from ssl_bench.config.run_spec import num_runs
    from ssl_bench.errors import UnknownNameError, UserError
    from ssl_bench.registry import LAUNCHERS
    from ssl_bench.run.launchers import LaunchPlan
    from ssl_bench.run.suite_runner import default_out_dir, prepare_out_dir

    if args.launcher not in LAUNCHERS:  # the suite's plugins (loaded by load_suite) may register launchers
        raise UnknownNameError("launcher", args.launcher, ["none", *LAUNCHERS.names()], "--launcher")
    launcher = LAUNCHERS.get(args.launcher)
    out = Path(args.out) if args.out else default_out_dir(suite)
    given = {k: v for k, v in vars(args).items() if k in LAUNCHER_DEFAULTS and v is not None}
    for key, value in given.items():
        if isinstance(value, (int, float)) and value < 1 and key != "mem_gb":
            raise UserError(f"--{key.replace('_', '-')}: bad value {value}; allowed: an integer >= 1")
    o = {**LAUNCHER_DEFAULTS, **suite.launcher, **given}
    workers = o["workers"] or (num_runs(suite) if launcher.per_run else 1)
    plan = LaunchPlan(str(Path(args.suite).resolve()), out.resolve(), workers, o["gpus_per_run"], o,
                      suite_args=suite_args(args),  # the workers run the same effective suite
                      cluster=args.slurm_cluster, wait=args.wait)
    prepare_out_dir(out, suite, args.resume, args.overwrite, args.adopt)  # once, here; workers run with --resume
    code = launcher.start(plan)
    if code is None:  # submitted, not awaited: the table comes with `ssl-bench table` later
        return 0
    if code not in (0, 3):
        complain(f"error: a worker exited with code {code}; see {out / 'logs'}")
        return code
    return finish(suite, out)


def suite_args(args: argparse.Namespace) -> list[str]:
    """The overrides and sweeps of this command line, as a worker's command line repeats them."""
    return [*args.overrides, *(f"--sweep={s}" for s in args.sweep or [])]


def add_override_arguments(p: argparse.ArgumentParser) -> None:
    """PATH=VALUE overrides and --sweep, for `run` and `validate` (config/overrides.py, config/sweeps.py)."""
    p.add_argument("overrides", nargs="*", metavar="PATH=VALUE",
                   help="change a suite field before validation, e.g. pretrain.epochs=5 methods[0].params.tau_base=0.996")
    p.add_argument("--sweep", action="append", metavar="PATH=V1,V2",
                   help="one labelled method per value, e.g. --sweep optim.base_lr=0.1,0.3,1.0 (every trained method) "
                        "or --sweep methods[0].params.tau_base=0.99,0.996; repeat for a grid")


def _cmd_status(args: argparse.Namespace) -> int:
    from ssl_bench.run.status import folder_status, other_runs, read_matrix, render_status

    states = folder_status(args.out)
    print(render_status(states, other_runs(args.out, states), str(read_matrix(Path(args.out)).get("suite"))))
    return 0


def add_run_parsers(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run a suite: pretrain, evaluate, print the table", epilog=RUN_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("suite", help="suite YAML file")
    add_override_arguments(r)
    r.add_argument("--out", help="output folder (default: output.dir or results/<suite name>)")
    r.add_argument("--resume", action="store_true", help="continue a killed or extended suite in --out")
    r.add_argument("--overwrite", action="store_true", help="delete ssl-bench's own outputs in --out first")
    r.add_argument("--adopt", action="store_true",
                   help="with --resume: continue a folder without ssl-bench's marker that holds its results")
    r.add_argument("--quiet", action="store_true",
                   help="no progress display (bars on a terminal, a line per epoch / phase in a log)")
    r.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # started by a launcher
    g = r.add_argument_group("launchers (defaults from the suite's launcher: block)")
    g.add_argument("--launcher", default="none", metavar="NAME",
                   help="none: this process is the only worker (default); local: N worker processes here; "
                        "slurm: a submitit job array; or a plugin's (ssl-bench list launchers)")
    g.add_argument("--workers", type=int, help="number of workers (slurm default: one per run)")
    g.add_argument("--gpus-per-run", dest="gpus_per_run", type=int, help="GPUs per worker; > 1 runs DDP")
    for flag, kind, text in (("--partition", str, "SLURM partition"), ("--time-min", int, "SLURM time limit (min)"),
                             ("--cpus-per-task", int, "CPUs per SLURM task"), ("--account", str, "SLURM account"),
                             ("--constraint", str, "SLURM constraint"), ("--mem-gb", float, "memory per task")):
        g.add_argument(flag, dest=flag[2:].replace("-", "_"), type=kind, help=text)
    g.add_argument("--wait", action="store_true", help="slurm: wait for the job and print the table")
    g.add_argument("--slurm-cluster", dest="slurm_cluster", choices=["slurm", "local", "debug"],
                   help=argparse.SUPPRESS)  # submitit's local/debug executors: the tests run the slurm path
    r.set_defaults(func=_cmd_run)
    s = sub.add_parser("status", help="done / running / failed / pending runs of a result folder, with an ETA")
    s.add_argument("out", help="a result folder written by ssl-bench run")
    s.set_defaults(func=_cmd_status)
