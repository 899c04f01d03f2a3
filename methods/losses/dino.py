"""DINO's pieces [DINO Alg. 1, facebookresearch/dino main_dino.py DINOLoss]: the cross-entropy between the
centered, sharpened teacher and the student over every (global teacher view, other student view) pair, the
teacher temperature's warm-up, and the center's EMA over the global batch."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_bench.distributed import all_reduce_with_grad, world_size


def teacher_temperature(epoch: int, warmup_temp: float, temp: float, warmup_epochs: int) -> float:
    """[main_dino.py DINOLoss.teacher_temp_schedule]: linspace(warmup_temp, temp, warmup_epochs) over the first
    warmup_epochs epochs (its last value is temp), then temp."""
    if epoch >= warmup_epochs:
        return temp
    if warmup_epochs == 1:
        return warmup_temp
    return warmup_temp + (temp - warmup_temp) * epoch / (warmup_epochs - 1)


def dino_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], center: torch.Tensor,
              teacher_temp: float, student_temp: float = 0.1) -> torch.Tensor:
    """Mean over pairs (teacher view t, student view s != t) of the batch mean of
    -sum softmax((teacher_t - center) / teacher_temp) * log_softmax(student_s / student_temp).

    student: per view (B x K) outputs, the teacher's global views first; teacher: per global view (B x K), no
    gradient; center: (1 x K). Computed in float32 at least."""
    dtype = torch.promote_types(student[0].dtype, torch.float32)
    targets = [F.softmax((t.detach().to(dtype) - center.to(dtype)) / teacher_temp, dim=-1) for t in teacher]
    logs = [F.log_softmax(s.to(dtype) / student_temp, dim=-1) for s in student]
    total, terms = student[0].new_zeros((), dtype=dtype), 0
    for ti, q in enumerate(targets):
        for si, log_p in enumerate(logs):
            if si != ti:  # a view never predicts itself
                total = total + (-q * log_p).sum(dim=-1).mean()
                terms += 1
    return total / terms


@torch.no_grad()
def dino_center(center: torch.Tensor, teacher: torch.Tensor, momentum: float = 0.9) -> torch.Tensor:
    """The next center [main_dino.py DINOLoss.update_center]: momentum * center + (1 - momentum) * the mean of
    the teacher outputs (every global view, N x K) over every process's rows."""
    batch_center = all_reduce_with_grad(teacher.sum(dim=0, keepdim=True)) / (teacher.shape[0] * world_size())
    return center * momentum + batch_center.to(center.dtype) * (1 - momentum)
