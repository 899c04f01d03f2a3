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

from typing import TYPE_CHECKING, Any

from ssl_bench import validate as v
from ssl_bench.errors import UserError

if TYPE_CHECKING:
    from ssl_bench.config.spec import MethodSpec

KINDS = ("epochs", "images_seen", "wall_time_s")
# Far above any real run (ImageNet for 1000 epochs is 1.3e9 images), far below what breaks the step arithmetic.
MAX_IMAGES_SEEN = 10 ** 12
MAX_WALL_TIME_S = 365 * 24 * 3600.0
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
        allowed = f"a number of seconds > 0 and at most {MAX_WALL_TIME_S:g} (a year)"
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x <= MAX_WALL_TIME_S:  # NaN too
            raise v.fail(where, x, allowed)
        return {kind: float(x)}
    if isinstance(x, float) and x.is_integer() and abs(x) <= MAX_IMAGES_SEEN:  # YAML 1.2 reads 5e4 as a float
        x = int(x)
    return {kind: v.as_int(x, where, 1, 100000 if kind == "epochs" else MAX_IMAGES_SEEN)}


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
