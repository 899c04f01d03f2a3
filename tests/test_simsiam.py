"""SimSiam: the loss (value and gradient, float64) against the formula written out, the stop-gradient, the
official heads and recipe, the predictor's fixed learning rate, and a short training run on digits."""
import math

import pytest
import torch

from digits_pretrain import pretrain_on_digits
from ssl_bench.backbones import create_backbone
from ssl_bench.engine.optim import build_optimizer, scheduled_lr
from ssl_bench.methods.losses import simsiam_loss
from ssl_bench.methods.simsiam import SimSiam


def _loop_loss(p1, p2, z1, z2) -> torch.Tensor:
    """[SSp eq. 1-4, SS main_simsiam.py L295]: -(mean_i cos(p1_i, z2_i) + mean_i cos(p2_i, z1_i)) / 2."""
    n, d = p1.shape

    def cos(a, b):
        dot = sum(a[k] * b[k] for k in range(d))
        return dot / (torch.sqrt(sum(a[k] ** 2 for k in range(d))) * torch.sqrt(sum(b[k] ** 2 for k in range(d))))

    return -(sum(cos(p1[i], z2[i]) for i in range(n)) / n + sum(cos(p2[i], z1[i]) for i in range(n)) / n) / 2


def test_loss_value_and_gradient_match_the_formula_and_z_gets_none():
    g = torch.Generator().manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(5, 6, generator=g, dtype=torch.float64) for _ in range(4))
    got = [x.clone().requires_grad_(True) for x in (p1, p2, z1, z2)]
    ref = [x.clone().requires_grad_(True) for x in (p1, p2)]
    loss = simsiam_loss(*got)
    want = _loop_loss(ref[0], ref[1], z1, z2)  # z as constants: the stop-gradient
    loss.backward()
    want.backward()
    assert abs(loss.item() - want.item()) < 1e-12
    for a, b in zip(got[:2], ref):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)
    assert got[2].grad is None and got[3].grad is None  # sg(z): no gradient through the targets
    z = torch.randn(4, 3, dtype=torch.float64)
    assert abs(simsiam_loss(z, z, z, z).item() + 1) < 1e-12 and abs(simsiam_loss(-z, -z, z, z).item() - 1) < 1e-12


def _tiny(**kw) -> SimSiam:
    torch.manual_seed(0)
    bb = create_backbone("resnet18", in_chans=1, image_size=8, channels=[4, 8, 8, 8], stem_width=4)
    return SimSiam(bb, **{"proj_hidden_dim": 16, "proj_dim": 16, "pred_hidden_dim": 4, **kw})


def test_official_heads_and_recipe():
    hp, opt = SimSiam.defaults, SimSiam.optim_recipe()
    assert (hp["proj_dim"], hp["pred_hidden_dim"], hp["fix_pred_lr"]) == (2048, 512, True)
    assert (opt["optimizer"], opt["base_lr"], opt["weight_decay"], opt["momentum"]) == ("sgd", 0.05, 1e-4, 0.9)
    assert opt["warmup_epochs"] == 0 and not opt["exclude_bias_and_norm"]  # wd on every parameter
    assert SimSiam.presets["simsiam-100ep"].batch_size == 512 and SimSiam.presets["simsiam-100ep-256"].batch_size == 256
    m = SimSiam(create_backbone("resnet18", in_chans=3, image_size=32))
    proj = [x for x in m.projector if isinstance(x, torch.nn.Linear)]
    pred = [x for x in m.predictor if isinstance(x, torch.nn.Linear)]
    assert [(x.in_features, x.out_features) for x in proj] == [(512, 2048), (2048, 2048), (2048, 2048)]
    assert [(x.in_features, x.out_features) for x in pred] == [(2048, 512), (512, 2048)]
    assert all(x.bias is None for x in proj) and pred[1].bias is not None and pred[0].bias is None
    bns = [x for x in m.projector if isinstance(x, torch.nn.BatchNorm1d)]
    assert len(bns) == 3 and not bns[-1].affine and bns[0].affine  # the output BN has no affine
    assert m.momentum_pairs() == []
    assert SimSiam.view_recipes(SimSiam.defaults)[0]["crop_scale"] == [0.2, 1.0]  # MoCo v2's views


def test_the_predictor_keeps_the_initial_lr_and_the_rest_decays():
    """[SS main_simsiam.py L193-195, L359-366]: with fix_pred_lr the predictor's group stays at init_lr while
    the encoder and projector follow the cosine; weight decay 1e-4 everywhere."""
    m = _tiny()
    opt = build_optimizer(m, m.optim_recipe(), lr=0.1)
    pred = {id(p) for p in m.predictor.parameters()}
    late = 0.1 * 0.5 * (1 + math.cos(math.pi * 0.75))  # the cosine at 3/4 of the schedule
    for g in opt.param_groups:
        assert g["weight_decay"] == 1e-4
        is_pred = {id(p) in pred for p in g["params"]}
        assert len(is_pred) == 1  # a group is all predictor or none of it
        assert scheduled_lr(g, late, 0.1) == pytest.approx(0.1 if is_pred.pop() else late)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(m.parameters()))
    decayed = build_optimizer(_tiny(fix_pred_lr=False), m.optim_recipe(), lr=0.1)
    assert all(scheduled_lr(g, late, 0.1) == pytest.approx(late) for g in decayed.param_groups)


def test_every_trainable_parameter_gets_a_finite_gradient():
    m = _tiny()
    m([torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)])["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters() if p.requires_grad)


@pytest.mark.slow
def test_engine_training_on_digits_lowers_the_loss_with_finite_features(tmp_path):
    losses, feats = pretrain_on_digits(SimSiam, tmp_path, optim={"base_lr": 0.5}, proj_hidden_dim=64, proj_dim=64,
                                       pred_hidden_dim=16)
    assert losses[-1] < losses[0] - 0.15 and -1 <= min(losses) and max(losses) <= 1, losses
    assert torch.isfinite(feats).all() and feats.std(dim=0).mean() > 1e-3  # not collapsed to one point
