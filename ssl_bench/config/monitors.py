"""The suite schema of the two pretraining monitors, `pretrain.knn_monitor` and `pretrain.online_linear`.

Pure Python (no torch): suite validation imports it. Each option is `false` (the default: off), `true` (on,
with the defaults below) or a mapping overriding some of them; validation turns it into `False` or the full
mapping, and that normalized value is what the engine, the run config hash and the evaluations read.

    pretrain:
      knn_monitor: {every: 5, k: 20, temperature: 0.07, val_size: 1000, bank_size: null}
      online_linear: {base_lr: 0.1}
"""
from __future__ import annotations

from typing import Any

from ssl_bench import validate as v
from ssl_bench.errors import UserError

# solo-learn's online kNN uses k=20 [solo-learn]; T=0.07 is InstDisc's (the `knn` evaluation's default).
# val_size: a fixed, seeded subset of the val split is classified; bank_size null: the whole train split is the
# memory bank (lightly recomputes train features for its bank every epoch [lightly]).
KNN_MONITOR_DEFAULTS: dict[str, Any] = {"every": 1, "k": 20, "temperature": 0.07, "val_size": 1000,
                                        "bank_size": None}
# solo-learn's CIFAR recipes train the online classifier at classifier_lr 0.1, scaled by batch / 256
# (scripts/pretrain/cifar/*.yaml, solo/args/pretrain.py) [solo-learn].
ONLINE_LINEAR_DEFAULTS: dict[str, Any] = {"base_lr": 0.1}


def _mapping(value: Any, field: str, defaults: dict[str, Any]) -> dict[str, Any] | None:
    """None for off, else the defaults overridden by `value` (true: the defaults as they are)."""
    if value is None or value is False:
        return None
    if value is True:
        return dict(defaults)
    if not isinstance(value, dict):
        raise v.fail(field, value, f"false, true (the defaults) or a mapping with keys {', '.join(defaults)}")
    return v.override(defaults, value, field)


def parse_knn_monitor(value: Any, field: str = "pretrain.knn_monitor") -> dict[str, Any] | bool:
    """False, or {every, k, temperature, val_size, bank_size} checked field by field."""
    cfg = _mapping(value, field, KNN_MONITOR_DEFAULTS)
    if cfg is None:
        return False
    v.as_int(cfg["every"], f"{field}.every", 1)
    v.as_int(cfg["k"], f"{field}.k", 1)
    v.Range(0, lo_open=True).check(cfg["temperature"], f"{field}.temperature")
    v.as_int(cfg["val_size"], f"{field}.val_size", 1)
    if cfg["bank_size"] is not None:
        try:
            v.as_int(cfg["bank_size"], f"{field}.bank_size", 1)
        except UserError:
            raise v.fail(f"{field}.bank_size", cfg["bank_size"], "null (the whole train split) or an integer "
                                                                 ">= 1") from None
    return cfg


def parse_online_linear(value: Any, field: str = "pretrain.online_linear") -> dict[str, Any] | bool:
    """False, or {base_lr} (lr = base_lr * global batch / 256, as solo-learn scales classifier_lr)."""
    cfg = _mapping(value, field, ONLINE_LINEAR_DEFAULTS)
    if cfg is None:
        return False
    v.Range(0, lo_open=True).check(cfg["base_lr"], f"{field}.base_lr")
    return cfg
