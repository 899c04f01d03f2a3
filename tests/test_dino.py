"""DINO: the loss and its gradient against the formula (float64), the teacher temperature against the official
schedule array, the center's EMA, the head against torch's weight norm, the method's step (teacher on the global
crops, center updated after the loss, last layer frozen in the first epoch, EMA schedule), the recipe. World size:
test_zoo_world_size.py."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssl_bench.method import TrainProgress
from ssl_bench.methods.dino import DINO
from ssl_bench.methods.dino_head import DINOHead, WeightNormLinear
from ssl_bench.methods.losses import dino_center, dino_loss, teacher_temperature

D64 = torch.float64


@pytest.mark.parametrize("warmup,epochs", [(30, 100), (50, 800), (1, 5), (0, 5), (2, 3)])
def test_teacher_temperature_is_the_official_schedule(warmup, epochs):
    schedule = np.concatenate((np.linspace(0.04, 0.07, warmup), np.ones(epochs - warmup) * 0.07))  # DINOLoss
    assert [teacher_temperature(e, 0.04, 0.07, warmup) for e in range(epochs)] == pytest.approx(schedule, rel=1e-12)


def dino_loss_by_formula(student, teacher, center, tt, ts):
    """[DINO Alg. 1] element by element: mean over (t, s != t) of -1/B sum_n sum_k q_t log p_s."""
    total, terms = 0.0, 0
    for ti, t in enumerate(teacher):
        for si, s in enumerate(student):
            if si == ti:
                continue
            for n in range(s.shape[0]):
                tl = [(float(t[n, k]) - float(center[0, k])) / tt for k in range(t.shape[1])]
                q = np.exp(tl - np.max(tl)) / np.sum(np.exp(tl - np.max(tl)))
                sl = [float(x) / ts for x in s[n].detach()]
                log_p = np.array(sl) - np.log(np.sum(np.exp(sl)))
                total -= float(np.dot(q, log_p)) / s.shape[0]
            terms += 1
    return total / terms


def test_dino_loss_and_its_gradient_match_the_formula():
    g = torch.Generator().manual_seed(0)
    b, k, ts, tt = 3, 5, 0.1, 0.05
    student = [torch.randn(b, k, generator=g, dtype=D64).requires_grad_() for _ in range(4)]  # 2 global + 2 local
    teacher = [torch.randn(b, k, generator=g, dtype=D64) for _ in range(2)]
    center = torch.randn(1, k, generator=g, dtype=D64)
    loss = dino_loss(student, teacher, center, tt, ts)
    assert loss.item() == pytest.approx(dino_loss_by_formula(student, teacher, center, tt, ts), rel=1e-12)
    loss.backward()
    q = [torch.softmax((t - center) / tt, dim=1) for t in teacher]
    for v, s in enumerate(student):  # d/ds_v = sum over teacher views t != v of (softmax(s_v / ts) - q_t) / (ts B n)
        p = torch.softmax(s.detach() / ts, dim=1)
        want = sum(p - q[t] for t in range(2) if t != v) / (ts * b * 6)  # 6 pairs: 2 x 4 minus the 2 same-view
        torch.testing.assert_close(s.grad, want, rtol=1e-10, atol=1e-14)


def test_center_is_an_ema_of_the_teacher_mean():
    g = torch.Generator().manual_seed(1)
    center, t = torch.randn(1, 4, generator=g, dtype=D64), torch.randn(6, 4, generator=g, dtype=D64)
    torch.testing.assert_close(dino_center(center, t, 0.9), 0.9 * center + 0.1 * t.mean(0, keepdim=True))


def test_head_is_mlp_normalize_and_a_weight_normed_layer():
    torch.manual_seed(0)
    head = DINOHead(8, 12, use_bn=True, hidden_dim=6, bottleneck_dim=4).double()
    kinds = [type(m).__name__ for m in head.mlp]
    assert kinds == ["Linear", "BatchNorm1d", "GELU", "Linear", "BatchNorm1d", "GELU", "Linear"]
    assert not head.last_layer.weight_g.requires_grad and torch.equal(head.last_layer.weight_g,
                                                                        torch.ones(12, 1, dtype=D64))
    torch.testing.assert_close(head.last_layer.weight().norm(dim=1), torch.ones(12, dtype=D64))  # norm_last_layer
    assert all(float(m.bias.detach().abs().max()) == 0 for m in head.mlp if isinstance(m, nn.Linear))
    x = torch.randn(5, 8, dtype=D64)
    mid = F.normalize(head.mlp(x), dim=1)
    torch.testing.assert_close(head(x), mid @ head.last_layer.weight().T)
    assert len([m for m in DINOHead(8, 12, use_bn=False).mlp if isinstance(m, nn.BatchNorm1d)]) == 0


def test_weight_norm_linear_is_torchs_weight_norm():
    torch.manual_seed(1)
    ours = WeightNormLinear(4, 3, fixed_norm=False).double()
    with torch.no_grad():
        ours.weight_g.copy_(torch.tensor([[0.5], [2.0], [1.0]]))
    ref = nn.Linear(4, 3, bias=False).double()
    ref = torch.nn.utils.parametrizations.weight_norm(ref)
    with torch.no_grad():
        ref.parametrizations.weight.original0.copy_(ours.weight_g)
        ref.parametrizations.weight.original1.copy_(ours.weight_v)
    x = torch.randn(6, 4, dtype=D64)
    torch.testing.assert_close(ours(x), ref(x))


class Flat(nn.Module):
    num_features = 6

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 6)

    def forward(self, x):
        return self.lin(F.adaptive_avg_pool2d(x, 2).flatten(1))


def _dino(**kw) -> DINO:
    torch.manual_seed(0)
    params = {"out_dim": 10, "hidden_dim": 8, "bottleneck_dim": 4, "local_crops": 2, "use_bn_in_head": False,
              "warmup_teacher_temp_epochs": 3, **kw}  # no BN: a forward per view equals the concatenated one
    return DINO(Flat(), **params).double()


def test_a_step_uses_the_teacher_on_global_crops_then_moves_the_center():
    m = _dino()
    m.set_progress(TrainProgress(7, 20, 1, 5))  # epoch 1 of a 3-epoch warm-up: tau_t = 0.055
    g = torch.Generator().manual_seed(2)
    views = [torch.randn(3, 1, 8, 8, generator=g, dtype=D64) for _ in range(2)] + \
        [torch.randn(3, 1, 4, 4, generator=g, dtype=D64) for _ in range(2)]
    center = torch.randn(1, 10, generator=g, dtype=D64)
    m.center.copy_(center)
    with torch.no_grad():
        teacher = [m.teacher_head(m.teacher_backbone(v)) for v in views[:2]]  # no BN: per view = concatenated
        student = [m.head(m.backbone(v)) for v in views]
    loss = m(views)["loss"]
    assert loss.item() == pytest.approx(dino_loss_by_formula(student, teacher, center, 0.055, 0.1), rel=1e-10)
    torch.testing.assert_close(m.center, 0.9 * center + 0.1 * torch.cat(teacher).mean(0, keepdim=True))
    loss.backward()
    assert all(p.grad is None for p in list(m.teacher_backbone.parameters()) + list(m.teacher_head.parameters()))


def test_last_layer_is_frozen_in_the_first_epochs():
    m = _dino(freeze_last_layer=1)
    views = [torch.randn(3, 1, 8, 8, dtype=D64)] * 2
    for epoch, frozen in ((0, True), (1, False)):
        m.zero_grad(set_to_none=True)
        m.set_progress(TrainProgress(epoch * 5, 20, epoch, 5))
        m(views)["loss"].backward()
        m.before_optimizer_step()
        assert (m.head.last_layer.weight_v.grad is None) == frozen
        assert m.head.mlp[0].weight.grad is not None


def test_teacher_momentum_is_the_official_cosine():
    official = 1 + (0.996 - 1) * 0.5 * (1 + np.cos(np.pi * np.arange(50) / 50))  # utils.cosine_scheduler(.996, 1)
    assert [_dino().momentum_at(s, 50) for s in range(50)] == pytest.approx(official, rel=1e-12)


def test_recipe_is_the_resnet50_one():
    d = DINO.defaults
    assert (d["out_dim"], d["norm_last_layer"], d["use_bn_in_head"], d["student_temp"], d["center_momentum"]) == \
        (65536, True, True, 0.1, 0.9)
    assert (d["warmup_teacher_temp"], d["teacher_temp"], d["warmup_teacher_temp_epochs"]) == (0.04, 0.07, 50)
    assert (d["momentum_teacher"], d["freeze_last_layer"]) == (0.996, 1)
    views = DINO.view_recipes(d)
    assert len(views) == 8 and [v["blur_p"] for v in views[:2]] == [1.0, 0.1] and views[1]["solarize_p"] == 0.2
    assert all(v["crop_scale"] == [0.14, 1.0] for v in views[:2])
    assert all(v["crop_scale"] == [0.05, 0.14] and v["blur_p"] == 0.5 and round(v["size_frac"] * 224) == 96
               for v in views[2:])
    o = DINO.optim_recipe()
    assert (o["optimizer"], o["base_lr"], o["weight_decay"]) == ("lars", 0.3, 1e-6)
    assert DINO.presets["dino-resnet50-800ep"].batch_size == 4080 and DINO.presets["dino-resnet50-800ep"].paper
    assert set(DINO.VIT_PRESETS) == {"dino-vit_small-100ep", "dino-vit_small-300ep"}
    m = DINO(Flat(), out_dim=10, hidden_dim=8, bottleneck_dim=4)
    assert [(a is m.backbone, b is m.teacher_backbone) for a, b in m.momentum_pairs()][0] == (True, True)
    assert math.isclose(m.momentum_at(0, 10), 0.996)
    assert m.encoder() is m.teacher_backbone  # DINO evaluates the teacher [eval_linear.py checkpoint_key]
    assert DINO(Flat(), out_dim=10, hidden_dim=8, bottleneck_dim=4, evaluate="student").encoder().__class__ is Flat
