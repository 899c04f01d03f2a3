"""Stop working on a run whose claim another worker took over (this one was paused past the claim timeout):
the trainer's hooks check the claim after every step (a flag the heartbeat thread sets) and at every epoch's
end, before that epoch is logged or checkpointed; the recorder checks it before each batch of rows is written."""
from __future__ import annotations

from typing import Any, Callable

from ssl_bench import distributed as dist
from ssl_bench.run.locks import Claim, ClaimLost


def epoch_hook(on_epoch_end: Callable[[int], dict[str, Any]] | None,
               claim: Claim | None) -> Callable[[int], dict[str, Any]] | None:
    """`on_epoch_end` preceded by the claim check; under torchrun rank 0 checks and every rank follows."""
    if claim is None and not dist.is_dist():
        return on_epoch_end

    def hook(epoch: int) -> dict[str, Any]:
        lost = ""
        if claim is not None:
            try:
                claim.check()
            except ClaimLost as exc:
                lost = str(exc)
        lost = _from_rank0(lost)
        if lost:
            raise ClaimLost(lost)
        return on_epoch_end(epoch) if on_epoch_end is not None else {}

    return hook


def step_hook(on_step: Callable[[int], None] | None, claim: Claim | None) -> Callable[[int], None] | None:
    """After every step, without a collective: only for a run on one process."""
    if claim is None or dist.is_dist():
        return on_step

    def hook(step: int) -> None:
        if claim.lost.is_set():
            claim.check()  # raises ClaimLost with the new owner's name
        if on_step is not None:
            on_step(step)

    return hook


def _from_rank0(value: str) -> str:
    if not dist.is_dist():
        return value
    import torch.distributed as tdist

    box = [value]
    tdist.broadcast_object_list(box, src=0)
    return box[0]
