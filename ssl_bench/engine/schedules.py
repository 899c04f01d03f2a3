"""Per-step learning-rate schedule: linear warmup from 0, then cosine to 0 [DM schedules.py]."""
from __future__ import annotations

import math


def scaled_lr(base_lr: float, global_batch: int) -> float:
    """lr = base * batch / 256 (BYOL, SimCLR, MoCo v3 convention)."""
    return base_lr * global_batch / 256


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    if warmup_steps > 0 and step < warmup_steps:
        return peak * step / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0), span) / span
    return peak * 0.5 * (1 + math.cos(math.pi * progress))
