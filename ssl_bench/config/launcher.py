"""A suite's `launcher:` block: defaults for the --launcher flags (local workers, SLURM), checked like every
other field before anything runs."""
from __future__ import annotations

from typing import Any

from ssl_bench import validate as v

LAUNCHER_DEFAULTS: dict[str, Any] = {"workers": None, "gpus_per_run": 1, "partition": None, "time_min": 60 * 24,
                                     "cpus_per_task": 8, "account": None, "constraint": None, "mem_gb": None}


def check_launcher(raw: Any, field: str = "launcher") -> dict[str, Any]:
    """A suite's `launcher:` block (defaults for the --launcher flags), checked like every other field."""
    o = v.override(LAUNCHER_DEFAULTS, raw, field)
    for key in ("workers", "gpus_per_run", "time_min", "cpus_per_task"):
        if o[key] is not None:
            o[key] = v.as_int(o[key], f"{field}.{key}", 1)
    for key in ("partition", "account", "constraint"):
        if o[key] is not None:
            v.as_str(o[key], f"{field}.{key}")
    if o["mem_gb"] is not None:
        o["mem_gb"] = v.as_float(o["mem_gb"], f"{field}.mem_gb", 0.0)
    return o
