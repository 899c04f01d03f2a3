"""Per-step schedules: the learning rate (linear warmup from 0, then cosine to 0 [DM schedules.py], or to a
final value as DINO's min_lr) and the weight decay (cosine from its start to its end value, DINO)."""
from __future__ import annotations

import math


def scaled_lr(base_lr: float, global_batch: int) -> float:
    """lr = base * batch / 256 (BYOL, SimCLR, MoCo v3 convention)."""
    return base_lr * global_batch / 256


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, peak: float, final: float = 0.0) -> float:
    if warmup_steps > 0 and step < warmup_steps:
        return peak * step / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0), span) / span
    return final + (peak - final) * 0.5 * (1 + math.cos(math.pi * progress))


def cosine_weight_decay(step: int, total_steps: int, start: float, end: float | None) -> float:
    """wd_k = end + (start - end) (1 + cos(pi k / K)) / 2 over the K steps of the schedule, no warmup
    [DINO main_dino.py wd_schedule = utils.cosine_scheduler(weight_decay, weight_decay_end, ...)];
    constant `start` when end is None."""
    if end is None or total_steps <= 0:
        return start
    k = min(max(step, 0), total_steps)
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * k / total_steps))
