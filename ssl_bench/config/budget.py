"""Pretraining budgets: epochs (the default), images seen, or wall-time seconds, so methods whose steps cost
different amounts can be trained to equal compute.

A suite gives `pretrain.budget` and / or `methods[i].budget`, each a mapping with exactly one of `epochs`,
`images_seen`, `wall_time_s`. A run's total optimizer steps are fixed before training, so the warmup + cosine lr
and the EMA tau schedules stretch to them: images_seen -> ceil(N / global batch) steps; wall_time_s ->
floor(T / estimated seconds per step), the step time measured on a copy of the model (engine.compute.step_time_s)
and saved in the run folder so that --resume keeps the same schedule. Training stops after that many steps,
possibly inside an epoch. An `epochs` budget is the same as `epochs:`: it leaves run ids exactly as they were.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ssl_bench import validate as v
from ssl_bench.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from ssl_bench.config.suite import MethodSpec

KINDS = ("epochs", "images_seen", "wall_time_s")
PLAN_FILE = "budget.json"  # a wall-time run's measured step time and step count, reused by --resume
ALLOWED = "a mapping with exactly one of epochs, images_seen, wall_time_s (e.g. {images_seen: 50000})"


def parse(value: Any, field: str) -> dict[str, float] | None:
    """A validated budget mapping {kind: value}; None when not given."""
    if value is None:
        return None
    d = v.as_dict(value, field)
    v.check_keys(d, KINDS, field)
    if len(d) != 1:
        raise v.fail(field, value, ALLOWED)
    kind, x = next(iter(d.items()))
    where = f"{field}.{kind}"
    if kind == "wall_time_s":
        if v.as_float(x, where, 0.0) <= 0:
            raise v.fail(where, x, "a number of seconds > 0")
        return {kind: float(x)}
    if isinstance(x, float) and x.is_integer():  # YAML 1.2 reads 5e4 as a float
        x = int(x)
    return {kind: v.as_int(x, where, 1, 100000 if kind == "epochs" else None)}


def normalize_pretrain(p: dict[str, Any], given: dict[str, Any]) -> None:
    """Validate pretrain.budget in place: an epochs budget becomes pretrain.epochs, anything else stays."""
    budget = parse(p.get("budget"), "pretrain.budget")
    if budget is not None and "epochs" in given:
        raise UserError("pretrain.budget: given together with pretrain.epochs; allowed: one of them")
    if budget is not None and "epochs" in budget:
        p["epochs"], budget = budget["epochs"], None
    p["budget"] = budget


def for_method(d: dict[str, Any], pretrain: dict[str, Any], field: str) -> tuple[dict | None, int, str]:
    """(budget other than epochs or None, epochs, the field that set them) for suite entry `d`: its own budget
    or epochs, else pretrain.budget, else pretrain.epochs."""
    if "budget" in d and "epochs" in d:
        raise UserError(f"{field}.budget: given together with {field}.epochs; allowed: one of them")
    if "epochs" in d:
        return None, v.as_int(d["epochs"], f"{field}.epochs", 0, 100000), f"{field}.epochs"
    source, budget = (f"{field}.budget", parse(d["budget"], f"{field}.budget")) if "budget" in d else \
        ("pretrain.budget", pretrain["budget"])
    if budget is None:
        return None, pretrain["epochs"], "pretrain.epochs"
    kind = next(iter(budget))
    return (None, budget["epochs"], f"{source}.epochs") if kind == "epochs" else (budget, 0, f"{source}.{kind}")


def kind_value(m: MethodSpec) -> tuple[str, float]:
    """("epochs", epochs) or the method's other budget, as records carry it."""
    return next(iter(m.budget.items())) if m.budget else ("epochs", m.epochs)


def record(m: MethodSpec, stats: dict[str, Any] | None) -> dict[str, Any]:
    """Result-row fields of a budgeted run's plan. `epochs` is the number it started for an images_seen budget
    (the same for every seed); a wall-time budget's count depends on each run's measured step time, so it is
    only in `epochs_started` (as `epochs` it would split one setting's seeds into several table rows)."""
    if not m.budget:
        return {}
    out = {k: (stats or {}).get(k) for k in ("budget_steps", "epochs_started", "budget_step_time_s")}
    return out | ({"epochs": out["epochs_started"]} if "images_seen" in m.budget else {})


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


def plan(m: MethodSpec, n_images: int, batch_size: int, world_size: int, run_dir: Path, resume: bool,
         estimate: Callable[[], float]) -> Plan:
    """The run's Plan. `estimate()` gives seconds per training step (called for a wall-time budget only, on
    every rank; under torchrun the slowest rank's time is used, so all ranks agree on the step count)."""
    if not m.budget:
        return Plan(m.epochs)
    from ssl_bench.data.loader import num_batches

    per_epoch = num_batches(n_images, batch_size // world_size, True, world_size)
    if per_epoch == 0:
        return Plan(1, 1)  # the trainer refuses a batch larger than the split, naming pretrain.batch_size
    kind, value = next(iter(m.budget.items()))
    step_time = None
    if kind == "images_seen":
        total = math.ceil(value / batch_size)
    else:
        saved = _saved(run_dir, m.budget) if resume else None
        step_time = saved if saved is not None else max(_agree(estimate()), 1e-9)
        total = max(1, math.floor(value / step_time))
        _save(run_dir, m.budget, step_time, total)
    return Plan(math.ceil(total / per_epoch), total, step_time)


def _agree(x: float) -> float:
    """The largest of x over ranks (max is exact, so every rank gets the same float)."""
    from ssl_bench import distributed as dist

    if not dist.is_dist():
        return x
    import torch
    import torch.distributed as tdist

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
    from ssl_bench import distributed as dist

    if dist.is_main():
        tmp = run_dir / (PLAN_FILE + ".tmp")
        tmp.write_text(json.dumps({"budget": budget, "step_time_s": step_time, "total_steps": total}))
        tmp.replace(run_dir / PLAN_FILE)


WHAT = {"images_seen": "images seen", "wall_time_s": "pretraining wall time"}


def table_notes(rows: pd.DataFrame) -> list[str]:
    """Footnotes saying which budget the shown rows were trained to, when it is not epochs."""
    if "budget_kind" not in rows:
        return []
    import pandas as pd

    is_budgeted = rows["budget_kind"].isin(list(WHAT))
    budgeted = rows[is_budgeted]
    epochs = pd.to_numeric(rows["epochs"], errors="coerce") if "epochs" in rows else 0
    trained = rows[is_budgeted | (epochs > 0)]  # untrained baselines (random: 0 epochs) match any budget
    notes = []
    groups = budgeted.groupby(["budget_kind", "budget_value"], sort=True)["method"]
    for (kind, value), methods in groups:
        amount = f"{value:,.0f}" if kind == "images_seen" else f"{value:,g} s"
        how = " (rounded up to whole batches)" if kind == "images_seen" else \
            " (steps fixed from a step time measured before training; machine-dependent)"
        names = list(dict.fromkeys(methods.astype(str)))
        whose = "" if len(groups) == 1 and len(budgeted) == len(trained) else f": {', '.join(names)}"
        notes.append(f"Pretrained to equal {WHAT[kind]}, {amount} per method{how}{whose}.")
    return notes
