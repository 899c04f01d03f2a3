"""MoCo v2 and v3: logits and losses against the formulas, the queue's FIFO, momentum, stop-gradient, training."""
import math

import pytest
import torch
import torch.nn.functional as F

from ssl_bench.backbones import create_backbone
from ssl_bench.engine.ema import ema_update
from ssl_bench.engine.optim import build_optimizer
from ssl_bench.errors import UserError
from ssl_bench.methods.losses import moco_v2_logits, moco_v2_loss, moco_v3_loss
from ssl_bench.methods.moco_v2 import MoCoV2
from ssl_bench.methods.moco_v3 import MoCoV3
from test_simclr import mean, train_on_digits


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / math.sqrt(float(v @ v))


def _backbone():
    torch.manual_seed(0)
    return create_backbone("resnet18", in_chans=1, image_size=8, channels=[4, 8, 8, 8], stem_width=4)


def _v2(**kw) -> MoCoV2:
    return MoCoV2(_backbone(), proj_hidden_dim=16, proj_dim=8, **{"queue_size": 12, **kw})


def _v3(**kw) -> MoCoV3:
    return MoCoV3(_backbone(), proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16, **kw)


# ---- MoCo v2 --------------------------------------------------------------------------------------------------
def test_v2_logits_match_the_formula():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64)
    queue = F.normalize(torch.randn(5, 4, generator=g, dtype=torch.float64), dim=1)
    t = 0.2
    logits = moco_v2_logits(q, k, queue, t)
    assert logits.shape == (3, 6)
    loss = 0.0
    for i in range(3):
        row = [float(_unit(q[i]) @ _unit(k[i])) / t] + [float(_unit(q[i]) @ queue[j]) / t for j in range(5)]
        for j, value in enumerate(row):
            assert abs(logits[i, j].item() - value) < 1e-9
        loss += -row[0] + math.log(sum(math.exp(x) for x in row))
    assert abs(moco_v2_loss(q, k, queue, t).item() - loss / 3) < 1e-9


def test_v2_queue_is_fifo_filled_after_the_loss():
    m = _v2(queue_size=12)
    m.train()
    g = torch.Generator().manual_seed(3)
    keys = []
    for step in range(4):  # 4 batches of 4 into a queue of 12: the first batch is overwritten by the fourth
        v1, v2 = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
        before = m.queue.clone()
        with torch.no_grad():  # independent recomputation of this step's query and keys (BN in train mode)
            q = m.projector(m.backbone(v1))
            k = F.normalize(m.key_projector(m.key_backbone(v2)), dim=1)
        loss = m([v1, v2])["loss"]
        keys.append(k)
        torch.testing.assert_close(loss, moco_v2_loss(q, k, before, 0.2))  # the loss saw the old queue
        assert m.queue.shape == (12, 8)
        assert int(m.queue_ptr) == (step + 1) * 4 % 12
    torch.testing.assert_close(m.queue[0:4], keys[3])  # oldest slot replaced by the newest keys
    torch.testing.assert_close(m.queue[4:8], keys[1])
    torch.testing.assert_close(m.queue[8:12], keys[2])
    assert torch.allclose(m.queue.norm(dim=1), torch.ones(12))


def test_v2_queue_is_checkpointed_and_must_divide_by_the_batch():
    m = _v2(queue_size=10)
    assert {"queue", "queue_ptr"} <= set(m.state_dict())
    with pytest.raises(UserError, match="queue_size: 10 is not a multiple of the global batch size 4"):
        m([torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)])


def test_v2_momentum_is_constant():
    m = _v2()
    assert [m.momentum_at(s, 100) for s in (0, 50, 100)] == [0.999] * 3
    assert MoCoV2.optim_recipe()["optimizer"] == "sgd" and MoCoV2.optim["base_lr"] == 0.03


# ---- MoCo v3 --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", [1.0, 0.2])
def test_v3_loss_matches_the_formula_with_2t_scale(t):
    g = torch.Generator().manual_seed(1)
    n, world, rank = 3, 2, 1
    q = torch.randn(n, 4, generator=g, dtype=torch.float64)
    k_all = torch.randn(n * world, 4, generator=g, dtype=torch.float64)  # keys of both simulated ranks
    expected = 0.0
    for i in range(n):
        s = [float(_unit(q[i]) @ _unit(k_all[j])) / t for j in range(n * world)]
        expected += -s[n * rank + i] + math.log(sum(math.exp(x) for x in s))  # positive: own key on rank 1
    expected = expected / n * 2 * t
    assert abs(moco_v3_loss(q, k_all, t, rank=rank).item() - expected) < 1e-9


def test_v3_method_loss_is_symmetric_sum():
    m = _v3()
    m.train()
    v1, v2 = torch.randn(5, 1, 8, 8), torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        q1, q2 = (m.predictor(m.projector(m.backbone(v))) for v in (v1, v2))
        k1, k2 = (m.momentum_projector(m.momentum_backbone(v)) for v in (v1, v2))
        expected = moco_v3_loss(q1, k2, 1.0) + moco_v3_loss(q2, k1, 1.0)
    torch.testing.assert_close(m([v1, v2])["loss"], expected)


def test_v3_momentum_is_cosine_from_base_to_one():
    m = _v3(tau_base=0.99)
    assert abs(m.momentum_at(0, 1000) - 0.99) < 1e-12
    assert abs(m.momentum_at(500, 1000) - 0.995) < 1e-12
    assert abs(m.momentum_at(250, 1000) - (1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2)) < 1e-12
    assert abs(m.momentum_at(1000, 1000) - 1.0) < 1e-12


def test_v3_paper_heads_and_recipe():
    m = MoCoV3(create_backbone("resnet18", in_chans=3, image_size=224))
    lin = [layer for layer in m.projector if isinstance(layer, torch.nn.Linear)]
    assert [(x.in_features, x.out_features, x.bias) for x in lin] == [(512, 4096, None), (4096, 256, None)]
    last_bn = m.projector[-1]
    assert isinstance(last_bn, torch.nn.BatchNorm1d) and not last_bn.affine
    lin = [layer for layer in m.predictor if isinstance(layer, torch.nn.Linear)]
    assert [(x.in_features, x.out_features) for x in lin] == [(256, 4096), (4096, 256)]
    assert (MoCoV3.optim["base_lr"], MoCoV3.optim["weight_decay"], m.hparams["temperature"]) == (0.6, 1e-6, 1.0)
    views = MoCoV3.augmentation["views"]
    assert (views[0]["blur_p"], views[1]["blur_p"], views[0]["solarize_p"], views[1]["solarize_p"]) == (
        1.0, 0.1, 0.0, 0.2)


# ---- both: no gradient reaches a key encoder; EMA moves it ------------------------------------------------------
@pytest.mark.parametrize("make, key_attrs", [(_v2, ("key_backbone", "key_projector")),
                                             (_v3, ("momentum_backbone", "momentum_projector"))])
def test_no_gradient_reaches_key_encoders(make, key_attrs):
    m = make()
    m.train()
    m([torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)])["loss"].backward()
    key_params = [p for a in key_attrs for p in getattr(m, a).parameters()]
    assert key_params and all(p.grad is None and not p.requires_grad for p in key_params)
    assert all(p.grad is not None for p in m.projector.parameters())
    opt_ids = {id(p) for g in build_optimizer(m, m.optim_recipe(), 0.1).param_groups for p in g["params"]}
    assert not opt_ids & {id(p) for p in key_params}  # the optimizer never sees them either
    online = [p for o, _ in m.momentum_pairs() for p in o.parameters()]
    target = [p.detach().clone() for _, t in m.momentum_pairs() for p in t.parameters()]
    with torch.no_grad():
        for p in online:
            p.add_(1.0)
    ema_update(m.momentum_pairs(), 0.9)
    for t0, o, t1 in zip(target, online, [p for _, t in m.momentum_pairs() for p in t.parameters()]):
        torch.testing.assert_close(t1, 0.9 * t0 + 0.1 * o)


# ---- a few training steps on digits ----------------------------------------------------------------------------
@pytest.mark.slow
def test_v2_loss_decreases_on_digits():
    losses = train_on_digits(MoCoV2, steps=30, lr=0.05, proj_hidden_dim=64, proj_dim=32, queue_size=128,
                             temperature=0.1, tau=0.99)
    # The first 2 steps see the random initial queue (easy negatives); from step 2 on it holds real keys.
    uniform = math.log(128 + 1)  # a constant query: every logit equal
    assert mean(losses[-5:]) < mean(losses[2:7]) - 0.2, losses
    assert mean(losses[-5:]) < uniform - 0.2, losses


@pytest.mark.slow
def test_v3_loss_decreases_on_digits():
    losses = train_on_digits(MoCoV3, steps=30, lr=4.0, proj_hidden_dim=64, proj_dim=32, pred_hidden_dim=64)
    uniform = 2 * 2 * 1.0 * math.log(64)  # two directions x 2T x log N
    assert mean(losses[-5:]) < mean(losses[:5]) - 0.3, losses
    assert mean(losses[-5:]) < uniform - 0.3, losses
