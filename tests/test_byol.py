"""BYOL: loss against the formula, EMA schedule, stop-gradient, EMA update."""
import math

import torch

from ssl_bench.backbones import create_backbone
from ssl_bench.engine.ema import ema_update
from ssl_bench.method import cosine_momentum
from ssl_bench.methods.byol import BYOL
from ssl_bench.methods.losses import byol_loss


def _tiny_byol(**kw):
    torch.manual_seed(0)
    bb = create_backbone("resnet18", in_chans=1, image_size=8, channels=[4, 8, 8, 8], stem_width=4)
    return BYOL(bb, proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16, **kw)


def test_loss_matches_hand_formula():
    g = torch.Generator().manual_seed(1)
    p1, p2, z1, z2 = (torch.randn(5, 7, generator=g) for _ in range(4))
    expected = 0.0
    for i in range(5):  # per-sample 2 - 2 <p/|p|, z/|z|>, both directions, then the batch mean
        for p, z in ((p1[i], z2[i]), (p2[i], z1[i])):
            expected += 2 - 2 * float(p @ z) / (math.sqrt(float(p @ p)) * math.sqrt(float(z @ z)))
    expected /= 5
    assert abs(byol_loss(p1, p2, z1, z2).item() - expected) < 1e-5


def test_loss_range_and_extremes():
    z = torch.randn(4, 6)
    assert byol_loss(z, z, z, z).item() < 1e-5  # aligned: 0
    assert abs(byol_loss(-z, -z, z, z).item() - 8.0) < 1e-4  # opposite: 2 * (2 - 2 * -1) = 8


def test_ema_schedule_start_middle_end():
    base, K = 0.99, 1000
    assert abs(cosine_momentum(base, 0, K) - 0.99) < 1e-12  # tau_0 = tau_base
    assert abs(cosine_momentum(base, 500, K) - (1 - 0.01 * 0.5)) < 1e-12  # cos(pi/2)=0 -> halfway
    assert abs(cosine_momentum(base, K, K) - 1.0) < 1e-12  # tau_K = 1
    m = _tiny_byol(tau_base=0.996)
    assert abs(m.momentum_at(0, 10) - 0.996) < 1e-12


def test_target_gets_no_gradient_and_online_does():
    m = _tiny_byol()
    m.train()
    x1, x2 = torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)
    out = m([x1, x2])
    out["loss"].backward()
    for p in list(m.target_backbone.parameters()) + list(m.target_projector.parameters()):
        assert p.grad is None and not p.requires_grad
    assert all(p.grad is not None for p in m.predictor.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.backbone.parameters())


def test_ema_update_formula_params_not_buffers():
    m = _tiny_byol()
    with torch.no_grad():
        for p in m.backbone.parameters():
            p.add_(torch.randn_like(p))
    online = [p.clone() for p in m.backbone.parameters()]
    target = [p.clone() for p in m.target_backbone.parameters()]
    bn_before = m.target_backbone.bn1.running_mean.clone()
    m.backbone.bn1.running_mean.add_(5.0)
    ema_update(m.momentum_pairs(), 0.9)
    for t0, o, t1 in zip(target, online, m.target_backbone.parameters()):
        torch.testing.assert_close(t1, 0.9 * t0 + 0.1 * o)
    assert torch.equal(m.target_backbone.bn1.running_mean, bn_before)  # BN statistics are not averaged


def test_paper_head_defaults():
    bb = create_backbone("resnet18", in_chans=3, image_size=224)
    m = BYOL(bb)
    lin = [l for l in m.projector if isinstance(l, torch.nn.Linear)]
    assert (lin[0].in_features, lin[0].out_features, lin[1].out_features) == (512, 4096, 256)
    lin = [l for l in m.predictor if isinstance(l, torch.nn.Linear)]
    assert (lin[0].in_features, lin[0].out_features, lin[1].out_features) == (256, 4096, 256)
    assert any(isinstance(l, torch.nn.BatchNorm1d) for l in m.projector)
