"""Launchers: start cooperative workers for a suite (see worker.py); they never schedule runs themselves.

- local: N worker processes on this machine, each with its own GPUs (CUDA_VISIBLE_DEVICES) or a share of the
  CPU threads; a worker with G > 1 GPUs runs under torchrun (DDP) inside it.
- slurm: a submitit job array, one task per worker (default: one per run); a task preempted or timed out is
  requeued by submitit and resumes from its run's last epoch checkpoint (the worker runs with --resume).
The parent prepares the output folder once (marker, --overwrite), then every worker runs with --resume.

A launcher is one function registered with `@register_launcher(name)`: start(plan) -> the workers' exit code
(0 all ok, 3 some rows failed), or None when it submitted them and does not wait (the table then is not
printed). `ssl-bench run --launcher NAME` picks it (checked against this registry); `per_run=True` makes its
default number of workers one per run instead of one.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ssl_bench.errors import UserError
from ssl_bench.jsonl import open_new, own_folder
from ssl_bench.registry import LAUNCHERS
from ssl_bench.run.signals import forward


@dataclass
class LaunchPlan:
    suite_path: str
    out: Path
    workers: int
    gpus_per_run: int
    options: dict[str, Any]
    suite_args: list[str] = field(default_factory=list)  # the command line's PATH=VALUE overrides and --sweeps
    cluster: str | None = None  # slurm: submitit's executor (slurm, or local / debug in tests)
    wait: bool = False  # slurm: wait for the job array to end


@dataclass(frozen=True)
class Launcher:
    """A registered launcher: `start(plan)` runs or submits plan.workers workers (see the module docstring)."""

    name: str
    start: Callable[[LaunchPlan], int | None]
    per_run: bool = False  # default workers: one per run (a job array), else one
    description: str = ""

    def __post_init__(self) -> None:  # what `ssl-bench list launchers` shows
        object.__setattr__(self, "__doc__", self.description)


def register_launcher(name: str, *, per_run: bool = False) -> Callable[[Callable], Callable]:
    """Register fn(plan: LaunchPlan) -> exit code | None as launcher `name` (its docstring's first line is what
    `ssl-bench list launchers` shows)."""

    def deco(start: Callable[[LaunchPlan], int | None]) -> Callable[[LaunchPlan], int | None]:
        doc = (start.__doc__ or "").strip().splitlines()
        LAUNCHERS.register(name, override=True)(Launcher(name, start, per_run, doc[0] if doc else ""))
        return start

    return deco


def get_launcher(name: str, where: str = "--launcher") -> Launcher:
    """The launcher registered as `name`; an unknown one is a UserError naming `where` and the known ones."""
    return LAUNCHERS.get(name, where=where)


def worst_code(codes: list[int]) -> int:
    """The exit code of a set of workers: the first one that is neither 0 nor 3, else the largest (0 when none)."""
    bad = [c for c in codes if c not in (0, 3)]
    return (bad[0] if bad else max(codes)) if codes else 0


def worker_command(plan: LaunchPlan, gpus: int) -> list[str]:
    """The command one worker runs: `ssl-bench run ... --resume --worker`, under torchrun when it has > 1 GPU."""
    # not --quiet: a worker's log gets a line per epoch and evaluation phase (no carriage returns in a file)
    run = ["-m", "ssl_bench", "run", plan.suite_path, *plan.suite_args, "--out", str(plan.out), "--resume",
           "--worker"]
    if gpus > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}", *run]
    return [sys.executable, *run]


def _visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_envs(plan: LaunchPlan) -> list[dict[str, str]]:
    """Each worker's environment: its own GPUs, or its share of the CPU threads when there is no GPU."""
    gpus = _visible_gpus()
    envs = []
    for i in range(plan.workers):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if gpus:
            if plan.workers * plan.gpus_per_run > len(gpus):
                raise UserError(f"--workers {plan.workers} x --gpus-per-run {plan.gpus_per_run}: needs "
                                f"{plan.workers * plan.gpus_per_run} GPUs, {len(gpus)} visible; allowed: at most "
                                f"{len(gpus)} in all")
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[i * plan.gpus_per_run:(i + 1) * plan.gpus_per_run])
        else:
            threads = max(1, (os.cpu_count() or 1) // (plan.workers * plan.gpus_per_run))
            env["OMP_NUM_THREADS"] = str(threads)
        envs.append(env)
    return envs


@register_launcher("local")
def launch_local(plan: LaunchPlan) -> int:
    """N worker processes on this machine, each with its own GPUs or a share of the CPU threads
    Waits for them and returns their worst exit code. SIGTERM or Ctrl-C here reaches every worker
    (signals.forward), which releases its claim and stops."""
    logs = own_folder(plan.out / "logs")
    procs, files = [], []
    try:
        for i, env in enumerate(worker_envs(plan)):
            files.append(open_new(logs / f"worker{i}.log"))  # a link planted there is replaced, not followed
            procs.append(subprocess.Popen(worker_command(plan, plan.gpus_per_run), env=env, stdout=files[-1],
                                          stderr=subprocess.STDOUT))
        print(f"started {plan.workers} local worker(s); logs: {logs}/worker*.log; progress: ssl-bench status "
              f"{plan.out}", flush=True)
        codes = [proc.wait() for proc in procs]
    except KeyboardInterrupt as exc:  # Terminated (SIGTERM) included
        forward(procs, exc)
        raise
    finally:
        for f in files:
            f.close()
    return worst_code(codes)


class SuiteWorker:
    """The callable each SLURM task runs: one cooperative worker; requeued on preemption or timeout."""

    def __init__(self, plan: LaunchPlan):
        self.plan = plan

    def __call__(self, index: int) -> int:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return subprocess.run(worker_command(self.plan, self.plan.gpus_per_run), env=env).returncode

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit calls this on preemption / timeout: requeue the same worker; --resume continues each run
        from its last epoch checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(SuiteWorker(self.plan), *args, **kwargs)


def slurm_executor(plan: LaunchPlan, cluster: str | None) -> Any:
    try:
        import submitit
    except ImportError:
        raise UserError("--launcher slurm: submitit is not installed; allowed: pip install \"ssl-bench[slurm]\"") \
            from None
    o = plan.options
    ex = submitit.AutoExecutor(folder=str(plan.out / "logs" / "slurm" / "%j"), cluster=cluster)
    params = {"timeout_min": o["time_min"], "gpus_per_node": plan.gpus_per_run, "tasks_per_node": 1,
              "cpus_per_task": o["cpus_per_task"], "name": f"ssl-bench-{plan.out.name}",
              "slurm_partition": o["partition"], "slurm_account": o["account"],
              "slurm_constraint": o["constraint"], "mem_gb": o["mem_gb"],
              "slurm_array_parallelism": plan.workers}
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return ex


def launch_slurm(plan: LaunchPlan, cluster: str | None = None, wait: bool = False) -> int:
    """Submit a job array of `plan.workers` tasks; print the job id and how to watch it."""
    return _submit(plan, cluster, wait) or 0


@register_launcher("slurm", per_run=True)
def _slurm(plan: LaunchPlan) -> int | None:
    """a submitit job array, one task per worker (default one per run); preempted tasks requeue and resume"""
    return _submit(plan, plan.cluster, plan.wait)


def _submit(plan: LaunchPlan, cluster: str | None, wait: bool) -> int | None:
    ex = slurm_executor(plan, cluster)
    jobs = ex.map_array(SuiteWorker(plan), list(range(plan.workers)))
    array_id = str(jobs[0].job_id).split("_")[0]
    print(f"submitted job {array_id}: {len(jobs)} task(s) over {plan.out}\n"
          f"  watch: squeue -j {array_id}   progress: ssl-bench status {plan.out}\n"
          f"  logs: {plan.out / 'logs' / 'slurm'}", flush=True)
    if not wait:
        return None
    return worst_code([job.result() for job in jobs])
