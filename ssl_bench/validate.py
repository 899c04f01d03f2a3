"""Small typed checks for YAML fields. Every error names the field path, the bad value and what is allowed."""
from __future__ import annotations

import difflib
from typing import Any, Iterable

from .errors import UserError


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
    if value != value or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise fail(field, value, _range("a number", lo, hi))
    return float(value)


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


def override(defaults: dict, given: Any, field: str) -> dict:
    """defaults <- given, with unknown keys and wrong types rejected."""
    given = as_dict(given, field)
    check_keys(given, defaults, field)
    out = dict(defaults)
    for key, value in given.items():
        out[key] = like_default(value, defaults[key], f"{field}.{key}")
    return out
