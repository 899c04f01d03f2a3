"""NNCLR, SwAV and DINO across processes (gloo, 2 CPU processes) against one process with the same global batch,
float64: SwAV's Sinkhorn codes (sums over the global batch) and loss, DINO's center (mean over the global batch)
and loss, NNCLR's loss (positives and negatives over the global batch) and support-set update (every process
writes the global batch). Gradients: DDP averages them over processes, so each process's gradient over the
world size is compared with the one-process gradient of its rows. Whole training runs: test_distributed.py."""
from __future__ import annotations

import pytest
import torch

N, WORLD, K = 3, 2, 5  # rows per process


def _inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    rows = N * WORLD

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return {"swav_scores": [randn(rows, K) / 3 for _ in range(3)], "dino_student": [randn(rows, K) for _ in range(3)],
            "dino_teacher": [randn(rows, K) for _ in range(2)], "center": randn(1, K),
            "nn": torch.nn.functional.normalize(randn(rows, 4), dim=1), "p": randn(rows, 4), "z": randn(rows, 4)}


def _losses(x: dict, mine: slice, rank: int) -> dict[str, torch.Tensor]:
    """Every quantity on this process's rows `mine` (all rows on one process), through the real collectives."""
    from ssl_bench import distributed as sdist
    from ssl_bench.methods.losses import (dino_center, dino_loss, nnclr_loss, sinkhorn_knopp, support_set_enqueue,
                                          swav_loss)

    out: dict[str, torch.Tensor] = {}
    scores = [s[mine].clone().requires_grad_() for s in x["swav_scores"]]
    codes = [sinkhorn_knopp(scores[i].detach(), 0.05, 3) for i in (0, 1)]
    out["swav_codes"] = torch.cat(codes)
    out["swav"] = swav_loss(scores, codes, [0, 1], 0.1)
    out["swav"].backward()
    out["swav_grad"] = torch.cat([s.grad for s in scores])
    student = [s[mine].clone().requires_grad_() for s in x["dino_student"]]
    teacher = [t[mine] for t in x["dino_teacher"]]
    out["dino"] = dino_loss(student, teacher, x["center"], 0.04)
    out["dino"].backward()
    out["dino_grad"] = torch.cat([s.grad for s in student])
    out["center"] = dino_center(x["center"], torch.cat(teacher), 0.9)
    p = x["p"][mine].clone().requires_grad_()
    out["nnclr"] = nnclr_loss(x["nn"][mine], sdist.gather_with_grad(p), 0.1, rank)
    out["nnclr"].backward()
    out["nnclr_grad"] = p.grad
    queue, ptr = torch.zeros(8, 4, dtype=torch.float64), torch.zeros((), dtype=torch.long)
    support_set_enqueue(queue, ptr, sdist.gather_no_grad(x["z"][mine]))
    out["queue"], out["ptr"] = queue, ptr
    return {k: v.detach() for k, v in out.items()}


def _worker(rank: int, world: int, tmp: str, x: dict) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world)
    torch.save(_losses(x, slice(rank * N, (rank + 1) * N), rank), f"{tmp}/{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow  # starts two processes
def test_two_processes_match_one_with_the_global_batch(tmp_path):
    import torch.multiprocessing as mp

    x = _inputs()
    mp.spawn(_worker, args=(WORLD, str(tmp_path), x), nprocs=WORLD)  # spawn, not fork (see test_simclr.py)
    res = [torch.load(tmp_path / f"{r}.pt") for r in range(WORLD)]
    one = _losses(x, slice(None), 0)

    def rows(t: torch.Tensor, r: int, blocks: int) -> torch.Tensor:  # rank r's rows of each of `blocks` blocks
        return torch.cat([b[r * N:(r + 1) * N] for b in t.chunk(blocks)])

    for name in ("swav", "dino", "nnclr"):  # the global loss is the mean of the processes' losses
        assert sum(r[name] for r in res).item() / WORLD == pytest.approx(one[name].item(), rel=1e-12, abs=1e-12)
    for r, got in enumerate(res):
        torch.testing.assert_close(got["swav_codes"], rows(one["swav_codes"], r, 2), rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(got["swav_grad"] / WORLD, rows(one["swav_grad"], r, 3), rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(got["dino_grad"] / WORLD, rows(one["dino_grad"], r, 3), rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(got["nnclr_grad"] / WORLD, one["nnclr_grad"][r * N:(r + 1) * N], rtol=1e-6,
                                   atol=1e-12)
        torch.testing.assert_close(got["center"], one["center"], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(got["queue"], one["queue"], rtol=0, atol=0)  # the global batch, rank order
        assert int(got["ptr"]) == int(one["ptr"]) == N * WORLD
    # teeth: a per-process Sinkhorn (local sums) or a per-process center would differ
    from ssl_bench.methods.losses import sinkhorn_knopp

    local = sinkhorn_knopp(x["swav_scores"][0][:N], 0.05, 3)
    assert (local - one["swav_codes"][:N]).abs().max() > 1e-3
    assert (x["dino_teacher"][0][:N].mean(0) - torch.cat(x["dino_teacher"]).mean(0)).abs().max() > 1e-2
