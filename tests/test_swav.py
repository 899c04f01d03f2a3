"""SwAV: Sinkhorn-Knopp against the official loop's arithmetic, the swapped-prediction loss and its gradient
against the formula (float64), the method's queue and prototype handling against the official training loop
written out here (main_swav.py train()), the frozen prototypes, the recipe. World size: test_zoo_world_size.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.method import TrainProgress
from ssl_bench.methods.losses import sinkhorn_knopp, swav_loss
from ssl_bench.methods.swav import SwAV

D64 = torch.float64


def official_sinkhorn(out: np.ndarray, eps: float, iterations: int) -> np.ndarray:
    """main_swav.py distributed_sinkhorn on one process (its all_reduce sums are then the local sums)."""
    q = np.exp(out / eps).T
    b, k = q.shape[1], q.shape[0]
    q = q / np.sum(q)
    for _ in range(iterations):
        q = q / np.sum(q, axis=1, keepdims=True)
        q = q / k
        q = q / np.sum(q, axis=0, keepdims=True)
        q = q / b
    return (q * b).T


@pytest.mark.parametrize("iterations", [1, 3, 10])
def test_sinkhorn_is_the_official_loop(iterations):
    g = torch.Generator().manual_seed(0)
    scores = F.normalize(torch.randn(12, 8, generator=g, dtype=D64), dim=1) @ \
        F.normalize(torch.randn(5, 8, generator=g, dtype=D64), dim=1).T  # cosines, as z . c
    got = sinkhorn_knopp(scores, 0.05, iterations)
    want = official_sinkhorn(scores.numpy(), 0.05, iterations)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=0)
    np.testing.assert_allclose(got.sum(1).numpy(), 1.0, rtol=1e-12)  # each sample's code is a distribution


def test_sinkhorn_balances_the_prototypes_and_stays_finite_in_float32():
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(30, 6, generator=g, dtype=D64) * 2 - 1
    q = sinkhorn_knopp(scores, 0.05, 200)
    np.testing.assert_allclose(q.sum(0).numpy(), 30 / 6, rtol=1e-6)  # equipartition: B/K samples per prototype
    half = sinkhorn_knopp(torch.ones(4, 3, dtype=torch.float16), 0.05, 3)  # exp(20) overflows float16
    assert half.dtype == torch.float32 and torch.isfinite(half).all()


def swav_loss_by_formula(scores, codes, assign, t):
    """[SwAV eq. 1-3] element by element: -(1/|A|) sum_i 1/(V-1) sum_{v != i} 1/B sum_n sum_k q_i log p_v."""
    total = 0.0
    for q, i in zip(codes, assign):
        sub = 0.0
        for v in range(len(scores)):
            if v == i:
                continue
            for n in range(scores[v].shape[0]):
                row = [float(x) / t for x in scores[v][n].detach()]
                log_z = np.log(np.sum(np.exp(row)))
                sub -= sum(float(q[n, k]) * (row[k] - log_z) for k in range(len(row))) / scores[v].shape[0]
        total += sub / (len(scores) - 1)
    return total / len(codes)


def test_swav_loss_and_its_gradient_match_the_formula():
    g = torch.Generator().manual_seed(2)
    b, k, views, t = 4, 5, 4, 0.1
    scores = [torch.randn(b, k, generator=g, dtype=D64).requires_grad_() for _ in range(views)]
    codes = [sinkhorn_knopp(scores[i].detach(), 0.05, 3) for i in (0, 1)]
    loss = swav_loss(scores, codes, [0, 1], t)
    assert loss.item() == pytest.approx(swav_loss_by_formula(scores, codes, [0, 1], t), rel=1e-12)
    loss.backward()
    for v in range(views):  # d/ds_v = sum over assigned i != v of (softmax(s_v / t) - q_i) / (t B (V-1) |A|)
        p = torch.softmax(scores[v].detach() / t, dim=1)
        want = sum(p - codes[j] for j, i in enumerate((0, 1)) if i != v) / (t * b * (views - 1) * 2)
        torch.testing.assert_close(scores[v].grad, want, rtol=1e-10, atol=1e-14)


class Flat(nn.Module):
    num_features = 16

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 16)

    def forward(self, x):
        return self.lin(F.adaptive_avg_pool2d(x, 2).flatten(1))


def _swav(**kw) -> SwAV:
    torch.manual_seed(0)
    params = {"hidden_mlp": 8, "feat_dim": 4, "nmb_prototypes": 6, "local_crops": 2, "queue_length": 12,
              "epoch_queue_starts": 1, **kw}
    return SwAV(Flat(), **params).double()


def test_the_queue_and_prototypes_follow_the_official_training_loop():
    """Steps of 4 images, 3 per epoch, queue of 12 from epoch 1: unused in epoch 0, filled during epoch 1 (full
    after 3 steps), used from epoch 2 on. The official loop's queue logic runs beside the method on its own
    outputs (embedding z and prototype scores), with its own queue, and gives the same loss at every step."""
    m, b, eps, t = _swav(), 4, 0.05, 0.1
    queue, use_the_queue = None, False  # main_swav.py: created at epoch_queue_starts; use once the last row is set
    g = torch.Generator().manual_seed(3)
    for step in range(12):
        epoch = step // 3
        if epoch >= 1 and queue is None:
            queue = torch.zeros(2, 12, 4, dtype=D64)
        views = [torch.randn(b, 1, 8, 8, generator=g, dtype=D64) for _ in range(2)] + \
            [torch.randn(b, 1, 4, 4, generator=g, dtype=D64) for _ in range(2)]
        m.set_progress(TrainProgress(step, 12, epoch, 3))
        with torch.no_grad():  # what the official forward returns, from the method's modules (normalized C)
            w = F.normalize(m.prototypes.weight, dim=1)
            h = torch.cat([m.backbone(torch.cat(views[:2])), m.backbone(torch.cat(views[2:]))])
            z = F.normalize(m.projector(h), dim=1)
            output = z @ w.T
        want = 0.0
        for i, crop in enumerate([0, 1]):
            out = output[b * crop:b * (crop + 1)]
            if queue is not None:
                if use_the_queue or not torch.all(queue[i, -1, :] == 0):
                    use_the_queue = True
                    out = torch.cat((queue[i] @ w.T, out))
                queue[i, b:] = queue[i, :-b].clone()
                queue[i, :b] = z[crop * b:(crop + 1) * b]
            q = torch.from_numpy(official_sinkhorn(out.numpy(), eps, 3))[-b:]
            sub = sum(-torch.mean(torch.sum(q * F.log_softmax(output[b * v:b * (v + 1)] / t, dim=1), dim=1))
                      for v in np.delete(np.arange(4), crop))
            want += float(sub) / 3
        got = m(views)["loss"]
        assert got.item() == pytest.approx(want / 2, rel=1e-10), step
        assert use_the_queue == (step >= 6)
        if queue is not None:
            torch.testing.assert_close(m.queue, queue, rtol=0, atol=0)
    torch.testing.assert_close(m.prototypes.weight.norm(dim=1), torch.ones(6, dtype=D64))  # normalized each step


def test_a_queue_shorter_than_the_batch_is_off_as_in_the_official_code():
    m = _swav(queue_length=3, epoch_queue_starts=0)  # 3 - 3 % 4 = 0 rows [main_swav.py L213]
    m.set_progress(TrainProgress(5, 10, 1, 5))
    assert m._queue_plan(4) == (0, False)


def test_prototypes_are_frozen_for_the_first_iterations():
    m = _swav(freeze_prototypes_niters=3)
    views = [torch.randn(4, 1, 8, 8, dtype=D64) for _ in range(2)] + [torch.randn(4, 1, 4, 4, dtype=D64)] * 2
    for step, frozen in ((0, True), (2, True), (3, False)):
        m.zero_grad(set_to_none=True)
        m.set_progress(TrainProgress(step, 10, 0, 10))
        m(views)["loss"].backward()
        m.before_optimizer_step()
        assert (m.prototypes.weight.grad is None) == frozen
        assert m.projector[0].weight.grad is not None  # the rest always trains


def test_recipe_is_the_800_epoch_script():
    d = SwAV.defaults
    assert (d["nmb_prototypes"], d["feat_dim"], d["temperature"], d["epsilon"], d["sinkhorn_iterations"]) == \
        (3000, 128, 0.1, 0.05, 3)
    assert (d["queue_length"], d["epoch_queue_starts"], d["freeze_prototypes_niters"]) == (3840, 15, 313)
    views = SwAV.view_recipes(d)
    assert len(views) == 8 and all(v["crop_scale"] == [0.14, 1.0] and "size_frac" not in v for v in views[:2])
    assert all(v["crop_scale"] == [0.05, 0.14] and round(v["size_frac"] * 224) == 96 for v in views[2:])
    colour = [{k: x for k, x in v.items() if k not in ("crop_scale", "size_frac")} for v in views]
    assert all(c == colour[0] for c in colour)  # one colour transform for every crop [multicropdataset.py]
    assert colour[0]["blur_p"] == 0.5 and colour[0]["solarize_p"] == 0.0 and colour[0]["brightness"] == 0.8
    o = SwAV.optim_recipe()
    assert (o["optimizer"], o["base_lr"] * 4096 / 256, o["weight_decay"], o["exclude_bias_and_norm"]) == \
        ("lars", 4.8, 1e-6, False)
    assert SwAV.presets["swav-400ep-bs256"].optim["base_lr"] == 0.6 and SwAV.presets["swav-800ep"].batch_size == 4096
