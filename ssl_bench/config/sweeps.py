"""`--sweep PATH=V1,V2,...`: one labelled method entry per value, so that the table has one row per value.

PATH is a field of a method entry: `params.*`, `optim.*`, `augment.*`, `epochs`, `budget.*` or `preset`.
`methods[i].PATH` sweeps method i alone. PATH without `methods[i]` sweeps each method it applies to: for
`params.K` every method that declares the parameter K; for the other fields every trained method (untrained
baselines such as `random` keep their one entry: sweeping their optimizer would repeat identical runs).
Each copy is labelled `<label>-<last key><value>` (byol -> byol-base_lr0.3, a safe name: characters other than
letters, digits and . _ + - become _). Several --sweep flags make a grid (one label suffix per sweep), applied
after the PATH=VALUE overrides; `methods[i]` always counts the entries of the suite file.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssl_bench.config.overrides import parse_value, set_path, split_assignment
from ssl_bench.errors import UserError

METHOD_FIELDS = ("params", "optim", "augment", "epochs", "budget", "preset")
UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass
class Sweep:
    text: str  # PATH=V1,V2 as given
    path: str
    index: int | None  # methods[i], or None: every method it applies to
    tokens: list[str | int]  # the path inside a method entry
    values: list[tuple[str, Any]]  # (text, parsed value)

    @property
    def leaf(self) -> str:
        return [t for t in self.tokens if isinstance(t, str)][-1]


def parse_sweep(text: str) -> Sweep:
    tokens, path, values = split_assignment(text, "--sweep")
    index = None
    if tokens[0] == "methods":
        if len(tokens) < 3 or not isinstance(tokens[1], int):
            raise UserError(f"--sweep {path}: allowed: methods[i].FIELD=V1,V2 (e.g. methods[0].optim.base_lr=0.1,0.3)")
        index, tokens = tokens[1], tokens[2:]
    if tokens[0] not in METHOD_FIELDS or (tokens[0] in ("params", "optim", "augment", "budget") and len(tokens) < 2):
        raise UserError(f"--sweep {path}: not a field of a method entry; allowed: params.KEY, optim.KEY, "
                        "augment.VIEW.KEY, epochs, budget.KIND or preset, optionally after methods[i] "
                        "(e.g. --sweep optim.base_lr=0.1,0.3,1.0)")
    items = [v.strip() for v in values.split(",")]
    if not values.strip() or not all(items) or len(set(items)) != len(items):
        raise UserError(f"--sweep {path}: bad values {values!r}; allowed: distinct comma-separated values, "
                        "e.g. 0.1,0.3,1.0")
    return Sweep(text, path, index, tokens, [(v, parse_value(v, path)) for v in items])


def _applies(sweep: Sweep, entry: Any) -> bool:
    """Whether a sweep without methods[i] changes this method entry (see the module docstring)."""
    from ssl_bench.registry import METHODS

    name = entry if isinstance(entry, str) else entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, str) or name not in METHODS:
        return False  # a bad entry: validation names it
    cls = METHODS.get(name)
    if sweep.tokens[0] == "params":
        return sweep.tokens[1] in cls.defaults
    return bool(cls.trainable)


def _targets(sweep: Sweep, methods: list) -> set[int]:
    if sweep.index is not None:
        if sweep.index >= len(methods):
            raise UserError(f"--sweep {sweep.path}: methods[{sweep.index}]: no such entry (the suite has "
                            f"{len(methods)}); allowed: an index 0..{len(methods) - 1}")
        return {sweep.index}
    found = {i for i, m in enumerate(methods) if _applies(sweep, m)}
    if not found:
        what = f"declares params.{sweep.tokens[1]}" if sweep.tokens[0] == "params" else "is trained"
        raise UserError(f"--sweep {sweep.path}: no method of the suite {what}; allowed: a field of one of its "
                        "methods, or methods[i].FIELD")
    return found


def _copy(entry: Any, sweep: Sweep, text: str, value: Any) -> dict:
    out = copy.deepcopy(entry) if isinstance(entry, dict) else {"name": entry}
    label = out.get("label", out.get("name"))
    try:
        set_path(out, sweep.tokens, value)
    except UserError as exc:
        raise UserError(f"--sweep {sweep.path}: {exc}") from None
    out["label"] = f"{label}-{sweep.leaf}{UNSAFE.sub('_', text)}"
    return out


def expand_sweeps(raw: dict, sweeps: list[str], suite_dir: Path) -> tuple[dict, dict[int, tuple[int, str]]]:
    """(raw with the swept methods expanded, {new index: (index in the file, the sweep values it got)})."""
    parsed = [parse_sweep(s) for s in sweeps]
    methods = raw.get("methods")
    if not parsed or not isinstance(methods, list) or not methods:
        return raw, {}  # no methods list: validation says so
    from ssl_bench.registry import import_plugins

    plugins = raw.get("plugins") or []
    if isinstance(plugins, list) and all(isinstance(p, str) for p in plugins):
        import_plugins(plugins, suite_dir)  # their methods count for a sweep without methods[i]
    entries = [(i, m, "") for i, m in enumerate(methods)]  # (index in the file, entry, what was swept)
    for sweep in parsed:
        targets, grown = _targets(sweep, methods), []
        for o, m, note in entries:
            if o not in targets:
                grown.append((o, m, note))
                continue
            grown += [(o, _copy(m, sweep, text, value), f"{note} --sweep {sweep.path}={text}".strip())
                      for text, value in sweep.values]
        entries = grown
    origin = {j: (o, note) for j, (o, _, note) in enumerate(entries) if note}
    return {**raw, "methods": [m for _, m, _ in entries]}, origin


def name_origin(exc: UserError, origin: dict[int, tuple[int, str]]) -> UserError:
    """A validation error about a swept copy (`methods[4].optim.base_lr: ...`) named by the file's entry and
    the sweep that made it (`methods[1].optim.base_lr (--sweep optim.base_lr=abc): ...`)."""
    m = re.match(r"methods\[(\d+)\]([^:\s]*)(.*)", str(exc), re.S)
    if not m or int(m.group(1)) not in origin:
        return exc
    index, note = origin[int(m.group(1))]
    return UserError(f"methods[{index}]{m.group(2)} ({note}){m.group(3)}")
