"""Small typed checks for YAML fields. Every error names the field path, the bad value and what is allowed."""
from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ssl_bench.errors import UserError


def fail(field: str, value: Any, allowed: str) -> UserError:
    return UserError(f"{field}: bad value {value!r}; allowed: {allowed}")


def check_keys(d: dict, allowed: Iterable[str], field: str) -> None:
    allowed = list(allowed)
    for key in d:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            path = f"{field}.{key}" if field else str(key)
            raise UserError(f"{path}: unknown key{hint}; allowed keys: {', '.join(allowed) or '(none)'}")


def as_dict(value: Any, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(field, value, "a mapping (key: value)")
    return value


def as_list(value: Any, field: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail(field, value, "a list")
    return value


def as_str(value: Any, field: str, choices: Iterable[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise fail(field, value, "one of " + ", ".join(choices) if choices else "a non-empty string")
    if choices is not None and value not in list(choices):
        raise fail(field, value, "one of " + ", ".join(choices))
    return value


# Anything that becomes a path component (suite name, method/backbone labels, dataset names): no separators,
# no leading dot (so no '..', no hidden files), short enough for any filesystem.
SAFE_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,127}")


def as_safe_name(value: Any, field: str) -> str:
    """A non-empty name usable as one path component: letters, digits, . _ + - and no leading dot."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise fail(field, value, "a name of 1-128 letters, digits, '.', '_', '+' or '-' that does not start "
                                 "with '.' (it becomes a folder or file name)")
    return value


def as_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise fail(field, value, "true or false")
    return value


def as_int(value: Any, field: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(field, value, _range("an integer", lo, hi))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise fail(field, value, _range("an integer", lo, hi))
    return value


def as_float(value: Any, field: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(field, value, _range("a number", lo, hi))
    if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise fail(field, value, _range("a finite number", lo, hi))
    return float(value)


@dataclass(frozen=True)
class Range:
    """A plugin's declared bounds for a numeric hyperparameter: a method or evaluation class attribute
    `param_ranges = {"proj_dim": DIM}`, applied by `override` to the suite's values.
    A list value (e.g. layer widths) is checked element by element; floats must also be finite."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # True: value > lo (a temperature), False: value >= lo
    hi_open: bool = False

    def allowed(self, kind: str) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
        return f"{kind} {' and '.join(parts)}".strip()

    def check(self, value: Any, field: str) -> Any:
        if isinstance(value, (list, tuple)):
            return [self.check(x, f"{field}[{i}]") for i, x in enumerate(value)]
        is_int = isinstance(value, int) and not isinstance(value, bool)
        kind = "an integer" if is_int else "a finite number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise fail(field, value, self.allowed(kind))
        below = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        above = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if below or above:
            raise fail(field, value, self.allowed(kind))
        return value


@dataclass(frozen=True)
class ExistingFile:
    """A declared parameter that names a file which must exist when the suite is validated (relative paths
    from the current folder, as at run time); `required`: the suite must give it."""

    required: bool = True

    def allowed(self, kind: str = "") -> str:
        return "a path to an existing file"

    def check(self, value: Any, field: str) -> Any:
        if not isinstance(value, str) or not value or not os.path.isfile(value):
            raise fail(field, value, self.allowed())
        return value


@dataclass(frozen=True)
class OneOf:
    """A declared parameter restricted to a few strings; `choices` may be a function giving them, read at check
    time (e.g. the names of a registry that plugins extend)."""

    choices: tuple[str, ...] | Callable[[], Iterable[str]]
    required: bool = False

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self.choices()) if callable(self.choices) else tuple(self.choices)

    def allowed(self, kind: str = "") -> str:
        return "one of " + ", ".join(self.options)

    def check(self, value: Any, field: str) -> Any:
        if value not in self.options:
            raise fail(field, value, self.allowed())
        return value


@dataclass(frozen=True)
class Widths:
    """A declared parameter that lists an MLP's layer widths: a non-empty list of integers >= 1."""

    def allowed(self, kind: str = "") -> str:
        return "a non-empty list of integers >= 1 (the layer widths)"

    def check(self, value: Any, field: str) -> Any:
        if not isinstance(value, (list, tuple)) or not value:
            raise fail(field, value, self.allowed())
        for i, x in enumerate(value):
            if isinstance(x, bool) or not isinstance(x, int) or x < 1:
                raise fail(f"{field}[{i}]", x, "an integer >= 1")
        return list(value)


DIM = Range(1)  # a layer width
WIDTHS = Widths()  # a list of layer widths
POSITIVE = Range(0, lo_open=True)  # a temperature, a scale
UNIT = Range(0, 1)  # a momentum, a probability


def _range(kind: str, lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"{kind} in [{lo}, {hi}]"
    if lo is not None:
        return f"{kind} >= {lo}"
    if hi is not None:
        return f"{kind} <= {hi}"
    return kind


def like_default(value: Any, default: Any, field: str) -> Any:
    """Check an override against the type of the plugin's declared default."""
    if default is None:
        return value
    if isinstance(default, bool):
        return as_bool(value, field)
    if isinstance(default, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return as_int(value, field)
    if isinstance(default, float):
        return as_float(value, field)
    if isinstance(default, str):
        return as_str(value, field)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise fail(field, value, f"a list like {list(default)!r}")
        return list(value)
    if isinstance(default, dict):
        return as_dict(value, field)
    return value


def override(defaults: dict, given: Any, field: str, ranges: dict[str, Range] | None = None) -> dict:
    """defaults <- given, with unknown keys, wrong types and (where declared) out-of-range values rejected."""
    given = as_dict(given, field)
    check_keys(given, defaults, field)
    out = dict(defaults)
    for key, value in given.items():
        path, rng = f"{field}.{key}", (ranges or {}).get(key)
        try:
            out[key] = like_default(value, defaults[key], path)
        except UserError:
            if rng is None:
                raise
            default = defaults[key]  # say the whole allowed range, not just the type
            is_int = isinstance(default, int) and not isinstance(default, bool)
            raise fail(path, value, rng.allowed("an integer" if is_int else "a finite number")) from None
        if rng is not None and out[key] is not None:
            rng.check(out[key], path)
    for key, rng in (ranges or {}).items():
        if getattr(rng, "required", False) and key not in given:
            raise UserError(f"{field}.{key}: missing; allowed: {rng.allowed()}")
    return out
