"""Launchers: start cooperative workers for a suite (see worker.py); they never schedule runs themselves.

- local: N worker processes on this machine, each with its own GPUs (CUDA_VISIBLE_DEVICES) or a share of the
  CPU threads; a worker with G > 1 GPUs runs under torchrun (DDP) inside it.
- slurm: a submitit job array, one task per worker (default: one per run); a task preempted or timed out is
  requeued by submitit and resumes from its run's last epoch checkpoint (the worker runs with --resume).
The parent prepares the output folder once (marker, --overwrite), then every worker runs with --resume.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssl_bench.errors import UserError
from ssl_bench.jsonl import open_new, own_folder
from ssl_bench.run.signals import forward

@dataclass
class LaunchPlan:
    suite_path: str
    out: Path
    workers: int
    gpus_per_run: int
    options: dict[str, Any]
    suite_args: list[str] = field(default_factory=list)  # the command line's PATH=VALUE overrides and --sweeps


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


def launch_local(plan: LaunchPlan) -> int:
    """Run the workers here and wait for them; the worst exit code of the workers (0 when all are 0). SIGTERM
    or Ctrl-C here reaches every worker (signals.forward), which releases its claim and stops."""
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
    bad = [c for c in codes if c not in (0, 3)]
    return (bad[0] if bad else max(codes)) if codes else 0


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
    ex = slurm_executor(plan, cluster)
    jobs = ex.map_array(SuiteWorker(plan), list(range(plan.workers)))
    array_id = str(jobs[0].job_id).split("_")[0]
    print(f"submitted job {array_id}: {len(jobs)} task(s) over {plan.out}\n"
          f"  watch: squeue -j {array_id}   progress: ssl-bench status {plan.out}\n"
          f"  logs: {plan.out / 'logs' / 'slurm'}", flush=True)
    if not wait:
        return 0
    codes = [job.result() for job in jobs]
    bad = [c for c in codes if c not in (0, 3)]
    return (bad[0] if bad else max(codes)) if codes else 0
