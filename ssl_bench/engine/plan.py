"""How long one run trains: the optimizer steps a budget (images seen, wall time) buys, fixed before training so
the lr and EMA schedules stretch to them. A wall-time run's measured step time is saved in the run folder, so
--resume keeps the same schedule (budget.json)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as tdist

from ssl_bench import distributed as dist
from ssl_bench.data.loader import num_batches
from ssl_bench.jsonl import write_text_atomic

PLAN_FILE = "budget.json"  # a wall-time run's measured step time and step count, reused by --resume


@dataclass
class Plan:
    """How long one run trains: `total_steps` None means epochs x steps per epoch, as without a budget."""

    epochs: int  # epochs started (the last one may be partial)
    total_steps: int | None = None
    step_time_s: float | None = None  # the wall-time budget's estimate of one step

    def stats(self) -> dict[str, Any]:
        """What run.json and the records keep about the plan (nothing for an epochs budget)."""
        if self.total_steps is None:
            return {}
        out = {"budget_steps": self.total_steps, "epochs_started": self.epochs}
        return out | ({"budget_step_time_s": self.step_time_s} if self.step_time_s is not None else {})


def plan(budget: dict[str, float] | None, epochs: int, n_images: int, batch_size: int, world_size: int,
         run_dir: Path, resume: bool, estimate: Callable[[], float]) -> Plan:
    """The run's Plan for a method's budget (None: `epochs`). `estimate()` gives seconds per training step
    (called for a wall-time budget only, on every rank; under torchrun the slowest rank's time is used, so all
    ranks agree on the step count)."""
    if not budget:
        return Plan(epochs)
    per_epoch = num_batches(n_images, batch_size // world_size, True, world_size)
    if per_epoch == 0:
        return Plan(1, 1)  # the trainer refuses a batch larger than the split, naming pretrain.batch_size
    kind, value = next(iter(budget.items()))
    step_time = None
    if kind == "images_seen":
        total = math.ceil(value / batch_size)
    else:
        saved = _saved(run_dir, budget) if resume else None
        step_time = saved if saved is not None else max(_agree(estimate()), 1e-9)
        total = max(1, math.floor(value / step_time))
        _save(run_dir, budget, step_time, total)
    return Plan(math.ceil(total / per_epoch), total, step_time)


def _agree(x: float) -> float:
    """The largest of x over ranks (max is exact, so every rank gets the same float)."""
    if not dist.is_dist():
        return x
    t = torch.tensor([x], dtype=torch.float64, device="cuda" if tdist.get_backend() == "nccl" else "cpu")
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return float(t.item())


def _saved(run_dir: Path, budget: dict) -> float | None:
    try:
        info = json.loads((run_dir / PLAN_FILE).read_text())
        return float(info["step_time_s"]) if info.get("budget") == budget else None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none yet, or unreadable: measure again


def _save(run_dir: Path, budget: dict, step_time: float, total: int) -> None:
    if dist.is_main():
        write_text_atomic(run_dir / PLAN_FILE,
                          json.dumps({"budget": budget, "step_time_s": step_time, "total_steps": total}))
