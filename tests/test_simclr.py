"""SimCLR: NT-Xent against a direct loop over pairs, the rank-offset layout, one 2N forward, and training."""
import math

import pytest
import torch

from ssl_bench.data.augment import MultiViewAugment, ViewRecipe
from ssl_bench.engine.ema import ema_update
from ssl_bench.engine.optim import build_optimizer
from ssl_bench.methods.losses import nt_xent_loss
from ssl_bench.methods.simclr import SimCLR
from ssl_bench.methods.views import simclr_view


def _loop_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """[SCp Alg. 1] written out: anchors are all 2N rows, each pair (i, j) counted from both sides."""
    rows = [z1[i] for i in range(len(z1))] + [z2[i] for i in range(len(z2))]
    n2, n = len(rows), len(z1)

    def sim(a, b):
        return float(a @ b) / (math.sqrt(float(a @ a)) * math.sqrt(float(b @ b)))

    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        denom = sum(math.exp(sim(rows[i], rows[k]) / t) for k in range(n2) if k != i)
        total += -math.log(math.exp(sim(rows[i], rows[j]) / t) / denom)
    return total / n2


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_nt_xent_matches_double_loop(t):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64)
    z = torch.cat([z1, z2])
    assert abs(nt_xent_loss(z, z, t).item() - _loop_nt_xent(z1, z2, t)) < 1e-6


def test_nt_xent_rank_offsets_reproduce_the_global_batch():
    """Two simulated processes: each sees its own 2N rows as anchors and every process's rows as candidates.
    The mean of their losses must be the single-process loss over the whole global batch."""
    g = torch.Generator().manual_seed(1)
    n, world = 4, 2
    z1, z2 = torch.randn(n * world, 3, generator=g, dtype=torch.float64), torch.randn(n * world, 3, generator=g,
                                                                                      dtype=torch.float64)
    local = [torch.cat([z1[r * n:(r + 1) * n], z2[r * n:(r + 1) * n]]) for r in range(world)]
    gathered = torch.cat(local)  # what gather_with_grad returns: rank order, each rank's [view 1; view 2]
    per_rank = [nt_xent_loss(local[r], gathered, 0.2, rank=r).item() for r in range(world)]
    assert abs(sum(per_rank) / world - _loop_nt_xent(z1, z2, 0.2)) < 1e-6


def test_nt_xent_gradient_reaches_negatives():
    z = torch.randn(8, 4, requires_grad=True)
    nt_xent_loss(z, z, 0.5).backward()
    assert torch.isfinite(z.grad).all() and (z.grad.abs().sum(dim=1) > 0).all()


def test_nt_xent_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="2N"):
        nt_xent_loss(torch.randn(5, 3), torch.randn(5, 3), 0.1)


def _tiny_simclr(**kw) -> SimCLR:
    from ssl_bench.backbones import create_backbone

    torch.manual_seed(0)
    bb = create_backbone("resnet18", in_chans=1, image_size=8, channels=[4, 8, 8, 8], stem_width=4)
    return SimCLR(bb, proj_hidden_dim=16, proj_dim=8, **kw)


def test_both_views_pass_as_one_batch_of_2n():
    m = _tiny_simclr()
    calls = []
    m.backbone.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    m.train()
    out = m([torch.randn(5, 1, 8, 8), torch.randn(5, 1, 8, 8)])
    assert calls == [10] and out["loss"].ndim == 0


def test_color_strength_sets_the_jitter():
    v = SimCLR.view_recipes({"color_strength": 0.5})
    assert len(v) == 2 and v[0] == v[1] == simclr_view(0.5)
    assert (v[0]["brightness"], v[0]["contrast"], v[0]["saturation"], v[0]["hue"]) == (0.4, 0.4, 0.4, 0.1)
    assert (v[0]["jitter_p"], v[0]["grayscale_p"], v[0]["blur_p"]) == (0.8, 0.2, 0.5)
    assert SimCLR.augmentation["views"] == SimCLR.view_recipes(SimCLR.defaults)


def test_suite_color_strength_reaches_the_views():
    from ssl_bench.config.suite import parse_suite

    suite = parse_suite({"name": "s", "datasets": ["digits"], "backbones": ["resnet18"], "evaluations": ["knn"],
                         "methods": [{"name": "simclr", "params": {"color_strength": 0.5}}]})
    assert [v["brightness"] for v in suite.methods[0].views] == [0.4, 0.4]


def test_paper_recipe():
    from ssl_bench.backbones import create_backbone

    assert SimCLR.optim_recipe()["optimizer"] == "lars"
    assert (SimCLR.optim["base_lr"], SimCLR.optim["weight_decay"]) == (0.3, 1e-6)
    m = SimCLR(create_backbone("resnet18", in_chans=3, image_size=224))
    lin = [layer for layer in m.projector if isinstance(layer, torch.nn.Linear)]
    assert (lin[0].in_features, lin[0].out_features, lin[1].out_features) == (512, 2048, 128)
    assert m.momentum_pairs() == []


def _two_process_worker(rank: int, world: int, tmp: str, z1, z2, q, k) -> None:
    """One of two gloo processes: the losses through the real gathers, saved for the parent to compare."""
    import torch.distributed as dist

    from ssl_bench import distributed as sdist
    from ssl_bench.methods.losses import moco_v3_loss
    from ssl_bench.methods.moco_v2 import MoCoV2

    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world)
    n = z1.shape[0] // world
    mine = slice(rank * n, (rank + 1) * n)
    z = torch.cat([z1[mine], z2[mine]]).clone().requires_grad_(True)
    l_simclr = nt_xent_loss(z, sdist.gather_with_grad(z), 0.2, sdist.rank())
    l_simclr.backward()
    q_local = q[mine].clone().requires_grad_(True)
    l_moco = moco_v3_loss(q_local, sdist.gather_no_grad(k[mine]), 1.0, sdist.rank())
    l_moco.backward()
    stub = torch.nn.Sequential(torch.nn.Flatten())
    stub.num_features = k.shape[1]
    m = MoCoV2(stub, proj_hidden_dim=4, proj_dim=k.shape[1], queue_size=2 * n * world)
    m.enqueue(k[mine])  # every process writes the keys of all processes
    torch.save({"simclr": l_simclr.detach(), "z_grad": z.grad, "moco": l_moco.detach(), "q_grad": q_local.grad,
                "queue": m.queue.clone(), "ptr": m.queue_ptr.clone()}, f"{tmp}/{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_losses_under_a_real_two_process_gather(tmp_path):
    """gloo, 2 processes: gathered SimCLR and MoCo v3 losses and gradients equal the one-process global batch
    (DDP averages gradients over processes, hence the division by the world size), and MoCo v2 enqueues the
    keys of every process in rank order."""
    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(5)
    n, world = 3, 2
    z1, z2, q, k = (torch.randn(n * world, 4, generator=g, dtype=torch.float64) for _ in range(4))
    # spawn, not fork: a child forked after this process ran OpenMP-parallel ops can hang in its first one.
    # (This module keeps its top-level imports light: each child imports it to find the worker.)
    mp.spawn(_two_process_worker, args=(world, str(tmp_path), z1, z2, q, k), nprocs=world)
    res = [torch.load(tmp_path / f"{r}.pt") for r in range(world)]
    z = torch.cat([z1, z2]).requires_grad_(True)
    loss = nt_xent_loss(z, z, 0.2)
    loss.backward()
    assert abs(sum(r["simclr"].item() for r in res) / world - loss.item()) < 1e-9
    for r in range(world):
        rows = list(range(r * n, (r + 1) * n)) + list(range(n * world + r * n, n * world + (r + 1) * n))
        torch.testing.assert_close(res[r]["z_grad"] / world, z.grad[rows])
    from ssl_bench.methods.losses import moco_v3_loss

    qg = q.clone().requires_grad_(True)
    loss = moco_v3_loss(qg, k, 1.0)
    loss.backward()
    assert abs(sum(r["moco"].item() for r in res) / world - loss.item()) < 1e-9
    for r in range(world):
        torch.testing.assert_close(res[r]["q_grad"] / world, qg.grad[r * n:(r + 1) * n])
    for r in range(world):
        torch.testing.assert_close(res[r]["queue"][:n * world], k.to(res[r]["queue"].dtype))
        assert int(res[r]["ptr"]) == n * world


# ---- a few training steps on real data (shared with test_moco.py and test_plugins.py) --------------------------
# Mild views (crop 0.8-1 + flip, no color): 8 px digits cropped at 0.08 are too hard for a few steps of a
# [8, 16, 16, 16] ResNet; the methods' own recipes are checked against the papers elsewhere.
EASY_VIEW = {"crop_scale": [0.8, 1.0], "flip_p": 0.5, "jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": 0.0,
             "solarize_p": 0.0}


def digits_uint8() -> torch.Tensor:
    from sklearn.datasets import load_digits

    x = torch.from_numpy(load_digits().images).float()  # 1797 x 8 x 8, values 0..16
    return (x * 255 / 16).round().to(torch.uint8).unsqueeze(1)


def train_on_digits(cls, steps: int, lr: float, batch: int = 64, seed: int = 0, **params) -> list[float]:
    """`steps` optimizer steps of `cls` (its own optimizer recipe at a constant lr, its own EMA schedule)
    on random batches of digits at 16 px with a narrow ResNet-18; returns the loss of every step."""
    from ssl_bench.backbones import create_backbone

    images = digits_uint8()
    torch.manual_seed(seed)
    backbone = create_backbone("resnet18", in_chans=1, image_size=16, channels=[8, 16, 16, 16], stem_width=8)
    method = cls(backbone, **params)
    method.train()
    recipe = ViewRecipe.from_dict(EASY_VIEW, "test")
    augment = MultiViewAugment([recipe, recipe], 16, mean=[0.3], std=[0.4])
    opt = build_optimizer(method, method.optim_recipe(), lr)
    pairs, g, losses = method.momentum_pairs(), torch.Generator().manual_seed(seed), []
    for step in range(steps):
        idx = torch.randint(len(images), (batch,), generator=g)
        loss = method(augment(images[idx], g))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if pairs:
            ema_update(pairs, method.momentum_at(step, steps))
        losses.append(loss.item())
    return losses


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


@pytest.mark.slow
def test_simclr_loss_decreases_on_digits():
    losses = train_on_digits(SimCLR, steps=30, lr=2.0, proj_hidden_dim=64, proj_dim=32, temperature=0.2)
    uniform = math.log(2 * 64 - 1)  # the loss of a constant embedding: every logit equal
    assert mean(losses[-5:]) < mean(losses[:5]) - 0.3, losses
    assert mean(losses[-5:]) < uniform - 0.3, losses  # learned to tell images apart, not collapsed
