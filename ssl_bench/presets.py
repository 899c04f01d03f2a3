"""Paper presets: a method's published recipe for a training budget, used only where a suite asks for one.

A method declares `presets = {name: Preset}` beside its defaults (methods/byol.py, moco_v3.py, ...). A suite
entry opts in with `preset: <name>`, or `preset: paper` for the one whose epoch count is the run's. The
preset's params and optim replace the method's defaults; the suite's own `params`, `pretrain.optim` and
`optim` still override it. Each preset states the global batch it was tuned at: a run at another batch (or
a named preset at another epoch count) gets one warning line naming the field. Learning rates stay
`base_lr * batch / 256` whatever the batch [DM schedules.py]; the warning says the recipe was not tuned there.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from ssl_bench.errors import UserError

PAPER = "paper"


@dataclass(frozen=True)
class Preset:
    """One published recipe: hyperparameter and optimizer values for a budget, with their source."""

    batch_size: int  # the global batch the recipe was tuned at
    source: str  # where every value comes from, e.g. "DM configs/byol.py"
    epochs: int | None = None  # the pretraining budget it is for (None: any)
    params: dict[str, Any] = field(default_factory=dict)
    optim: dict[str, Any] = field(default_factory=dict)
    # False: used only by its name, never chosen by `preset: paper` nor named by the unset-preset warning (a ViT
    # recipe beside a method's ResNet ones: DINO's ViT-S/16 rows would otherwise take over `paper` at 100 epochs)
    paper: bool = True


NO_PRESET = Preset(batch_size=0, source="")


def by_epochs(method: str, source: str, batch_size: int,
              table: dict[int, tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Preset]:
    """{"<method>-<N>ep": Preset} from a paper's table {epochs: (params, optim)}."""
    return {f"{method}-{n}ep": Preset(batch_size, source, n, params, optim) for n, (params, optim) in table.items()}


def resolve(cls: type, method: str, name: Any, epochs: int, field: str,
            epochs_field: str) -> tuple[str | None, Preset]:
    """(preset name, Preset) for a suite entry's `preset` value (None: no preset) of method `method`."""
    if name is None:
        return None, NO_PRESET
    presets: dict[str, Preset] = getattr(cls, "presets", {}) or {}
    allowed = ", ".join([PAPER, *presets]) if presets else "none (this method declares no presets)"
    if not isinstance(name, str) or not presets or (name != PAPER and name not in presets):
        raise UserError(f"{field}.preset: bad value {name!r}; allowed: {allowed}")
    if name != PAPER:
        return name, presets[name]
    for key, preset in presets.items():
        if preset.paper and (preset.epochs is None or preset.epochs == epochs):
            return key, preset
    budgets = ", ".join(str(p.epochs) for p in presets.values() if p.paper)
    raise UserError(f"{field}.preset: bad value 'paper': {method} has paper presets for {budgets} epochs, and "
                    f"{epochs_field} is {epochs}; allowed: one of those epoch counts, or a named preset ({allowed})")


def departures(name: str, preset: Preset, epochs: int, batch_size: int, field: str, epochs_field: str) -> list[str]:
    """One line per way this run departs from the budget the preset was published for."""
    lines = []
    if preset.batch_size and batch_size != preset.batch_size:
        lines.append(f"{field}.preset '{name}' assumes pretrain.batch_size {preset.batch_size} [{preset.source}]; "
                     f"this run uses {batch_size} (lr still scales as base_lr * batch / 256, but the recipe was "
                     f"tuned at {preset.batch_size})")
    if preset.epochs is not None and epochs != preset.epochs:
        lines.append(f"{field}.preset '{name}' is the {preset.epochs}-epoch recipe [{preset.source}]; "
                     f"{epochs_field} is {epochs}")
    return lines


def unset_preset_warning(cls: type, method: str, epochs: Any, resolved: dict[str, Any], given: set[str],
                         field: str) -> str | None:
    """Without `preset:`, one line when the method's paper preset for this epoch count differs from what the run
    uses in a field the suite did not set itself (BYOL at 1000 epochs silently gets the 100-epoch lr, weight
    decay and tau otherwise). None when there is no such preset or nothing differs."""
    presets: dict[str, Preset] = getattr(cls, "presets", {}) or {}
    for key, preset in presets.items():
        if not preset.paper or preset.epochs is None or preset.epochs != epochs:
            continue
        differ = {k: v for k, v in {**preset.params, **preset.optim}.items() if k not in given and resolved.get(k) != v}
        if differ:
            ours = ", ".join(f"{k} {resolved.get(k)}" for k in differ)
            theirs = ", ".join(f"{k} {v}" for k, v in differ.items())
            return (f"{field}.preset is not set, so {method} at {epochs} epochs runs its defaults ({ours}); its "
                    f"{epochs}-epoch paper preset '{key}' [{preset.source}] has {theirs}: set {field}.preset: "
                    f"paper to use it, or set these values in {field}.params / optim to keep them without this warning")
    return None


def apply_preset(cls: type, method: str, given: Any, epochs: int, batch_size: int, field: str,
                 epochs_field: str) -> tuple[str | None, Preset]:
    """Resolve a suite entry's `preset` and print a warning line for each departure from its budget."""
    name, preset = resolve(cls, method, given, epochs, field, epochs_field)
    if name is not None:
        for line in departures(name, preset, epochs, batch_size, field, epochs_field):
            print(f"warning: {line}", file=sys.stderr)
    return name, preset
