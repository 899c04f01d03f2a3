"""NNCLR: the nearest-neighbour lookup against a brute-force search, the loss and its gradient against the
formula (float64), the support set's FIFO against a list, the method's step (lookups before the update, view 1's
normalized projections enqueued), the recipe. World size: test_zoo_world_size.py and test_distributed.py."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.methods.losses import nearest_neighbour, nnclr_loss, support_set_enqueue
from ssl_bench.methods.nnclr import NNCLR

D64 = torch.float64


def test_nearest_neighbour_is_the_closest_support_row():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 5, generator=g, dtype=D64) * 3  # unnormalized: the lookup normalizes
    support = F.normalize(torch.randn(20, 5, generator=g, dtype=D64), dim=1)
    got = nearest_neighbour(z, support)
    for i in range(7):
        zi = z[i] / math.sqrt(float(z[i] @ z[i]))
        dist = [float(((zi - q) ** 2).sum()) for q in support]  # Euclidean on the unit sphere
        assert torch.equal(got[i], support[dist.index(min(dist))])
    assert not got.requires_grad


def nnclr_by_formula(nn_rows, p, t):
    """[NNCLR eq. 2]: mean_i -log(exp(nn_i . p_i / t) / sum_k exp(nn_i . p_k / t)), cosines."""
    total = 0.0
    for i in range(len(nn_rows)):
        a = nn_rows[i] / nn_rows[i].norm()
        sims = [float(a @ (p[k] / p[k].norm())) / t for k in range(len(p))]
        total += -sims[i] + math.log(sum(math.exp(s) for s in sims))
    return total / len(nn_rows)


def test_loss_and_its_gradient_match_the_formula():
    g = torch.Generator().manual_seed(1)
    nn_rows = F.normalize(torch.randn(6, 4, generator=g, dtype=D64), dim=1)
    p = torch.randn(6, 4, generator=g, dtype=D64, requires_grad=True)
    loss = nnclr_loss(nn_rows, p, 0.1)
    assert loss.item() == pytest.approx(nnclr_by_formula(nn_rows, p.detach(), 0.1), rel=1e-12)
    loss.backward()
    # by hand: L = mean_i CE(a_i . u_k / t), u = p / |p|; dL/du_k = 1/(N t) sum_i (softmax_i[k] - [i = k]) a_i,
    # and through the normalization dL/dp_k = (I - u_k u_k^T) dL/du_k / |p_k|
    u = F.normalize(p.detach(), dim=1)
    soft = torch.softmax(nn_rows @ u.T / 0.1, dim=1)
    d_u = (soft - torch.eye(6, dtype=D64)).T @ nn_rows / (6 * 0.1)
    norms = p.detach().norm(dim=1, keepdim=True)
    want = (d_u - (d_u * u).sum(1, keepdim=True) * u) / norms
    torch.testing.assert_close(p.grad, want, rtol=1e-10, atol=1e-13)


def test_rank_offsets_pick_this_process_rows_as_positives():
    g = torch.Generator().manual_seed(2)
    nn_rows, p = torch.randn(8, 3, generator=g, dtype=D64), torch.randn(8, 3, generator=g, dtype=D64)
    halves = [nnclr_loss(nn_rows[r * 4:(r + 1) * 4], p, 0.2, rank=r).item() for r in range(2)]
    assert sum(halves) / 2 == pytest.approx(nnclr_loss(nn_rows, p, 0.2).item(), rel=1e-12)


def test_support_set_is_a_fifo_of_the_newest_rows():
    queue, ptr = torch.zeros(10, 2, dtype=D64), torch.zeros((), dtype=torch.long)
    expected = [None] * 10
    written = 0
    for step in range(5):  # batches of 4 into 10 slots: wraps around inside a batch
        keys = torch.arange(8 * step, 8 * step + 8, dtype=D64).view(4, 2)
        support_set_enqueue(queue, ptr, keys)
        for row in keys.tolist():
            expected[written % 10] = row
            written += 1
        assert queue.tolist() == [r if r is not None else [0.0, 0.0] for r in expected]
        assert int(ptr) == written % 10


class Flat(nn.Module):
    num_features = 6

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 6)

    def forward(self, x):
        return self.lin(F.adaptive_avg_pool2d(x, 2).flatten(1))


def test_a_step_looks_up_the_old_support_set_then_enqueues_view_1():
    torch.manual_seed(0)
    m = NNCLR(Flat(), proj_hidden_dim=8, proj_dim=4, pred_hidden_dim=8, queue_size=10).double()
    g = torch.Generator().manual_seed(3)
    v1, v2 = torch.randn(3, 1, 8, 8, generator=g, dtype=D64), torch.randn(3, 1, 8, 8, generator=g, dtype=D64)
    before = m.queue.clone()
    with torch.no_grad():  # the same BN batch: both views through one forward
        z = m.projector(m.backbone(torch.cat([v1, v2])))
        p = m.predictor(z)
    z1, z2, p1, p2 = z[:3], z[3:], p[:3], p[3:]
    loss = m([v1, v2])["loss"]
    want = (nnclr_by_formula(nearest_neighbour(z1, before), p2, 0.1) +
            nnclr_by_formula(nearest_neighbour(z2, before), p1, 0.1)) / 2
    assert loss.item() == pytest.approx(want, rel=1e-10)
    torch.testing.assert_close(m.queue[:3], F.normalize(z1, dim=1))
    torch.testing.assert_close(m.queue[3:], before[3:], rtol=0, atol=0)
    assert int(m.queue_ptr) == 3


def test_recipe():
    d = NNCLR.defaults
    assert (d["queue_size"], d["temperature"], d["proj_hidden_dim"], d["proj_dim"], d["pred_hidden_dim"]) == \
        (98304, 0.1, 2048, 256, 4096)
    m = NNCLR(Flat())
    assert [type(x).__name__ for x in m.projector] == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear",
                                                                                              "BatchNorm1d"]
    assert m.queue.shape == (98304, 256) and torch.allclose(m.queue.norm(dim=1), torch.ones(98304))
    o = NNCLR.optim_recipe()
    assert (o["optimizer"], o["base_lr"] * 4096 / 256, o["weight_decay"]) == ("lars", 4.8, 1e-6)
    assert len(NNCLR.view_recipes(d)) == 2 and m.momentum_pairs() == []
