"""Barlow Twins: the loss (value and gradient, float64) against the official formula written out entry by entry,
the official recipe and head, the bias learning rate, and a short training run on digits."""
import math

import pytest
import torch

from ssl_bench.backbones import create_backbone
from ssl_bench.engine.optim import LARS, build_optimizer
from ssl_bench.methods.barlow_twins import BarlowTwins
from ssl_bench.methods.losses import barlow_twins_loss
from digits_pretrain import pretrain_on_digits


def _loop_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float, eps: float = 1e-5) -> torch.Tensor:
    """[BTp eq. 1, BT main.py L204-220] over scalars: each column standardized over the batch (BN, biased
    variance), C_ij = sum_b z1n_bi z2n_bj / N, then (1 - C_ii)^2 on the diagonal and lambda C_ij^2 off it."""
    n, d = z1.shape

    def standardized(z):
        cols = []
        for j in range(d):
            mu = sum(z[b, j] for b in range(n)) / n
            var = sum((z[b, j] - mu) ** 2 for b in range(n)) / n
            cols.append([(z[b, j] - mu) / torch.sqrt(var + eps) for b in range(n)])
        return cols  # cols[j][b]

    a, b = standardized(z1), standardized(z2)
    total = torch.zeros((), dtype=z1.dtype)
    for i in range(d):
        for j in range(d):
            c = sum(a[i][k] * b[j][k] for k in range(n)) / n
            total = total + ((1 - c) ** 2 if i == j else lambd * c ** 2)
    return total


def _pair(seed: int, n: int = 6, d: int = 4):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64)
    return z1, 0.6 * z1 + torch.randn(n, d, generator=g, dtype=torch.float64)  # correlated views


@pytest.mark.parametrize("lambd", [0.0051, 0.3])
def test_loss_value_and_gradient_match_the_formula(lambd):
    z1, z2 = _pair(0)
    got = [z.clone().requires_grad_(True) for z in (z1, z2)]
    ref = [z.clone().requires_grad_(True) for z in (z1, z2)]
    loss = barlow_twins_loss(*got, lambd)
    want = _loop_loss(*ref, lambd)
    loss.backward()
    want.backward()
    assert abs(loss.item() - want.item()) < 1e-10
    for g, r in zip(got, ref):
        torch.testing.assert_close(g.grad, r.grad, rtol=1e-9, atol=1e-12)
    assert all(g.grad.abs().sum() > 0 for g in got)


def test_loss_equals_the_official_batchnorm_form():
    """The official model: BatchNorm1d(D, affine=False) in training mode on each view, C = bn(z1)^T bn(z2) / N."""
    z1, z2 = _pair(1, n=8, d=5)
    bn = torch.nn.BatchNorm1d(5, affine=False).double().train()
    c = bn(z1).T @ bn(z2) / 8
    off = c - torch.diag(torch.diagonal(c))
    expected = ((torch.diagonal(c) - 1) ** 2).sum() + 0.0051 * (off ** 2).sum()
    assert abs(barlow_twins_loss(z1, z2, 0.0051).item() - expected.item()) < 1e-10


def test_loss_extremes():
    """Identical, decorrelated (whitened) views give C = I and a loss of 0; a constant embedding gives C = 0."""
    z = torch.linalg.qr(torch.randn(64, 4, dtype=torch.float64))[0]
    z = (z - z.mean(0)) / z.std(0, unbiased=False)
    q, _ = torch.linalg.qr(torch.cat([torch.ones(64, 1, dtype=torch.float64), z], 1))
    white = q[:, 1:] * math.sqrt(64)  # orthogonal to the constant: centred, unit variance, uncorrelated
    assert barlow_twins_loss(white, white, 0.5).item() < 1e-6
    const = torch.ones(16, 4, dtype=torch.float64)
    assert abs(barlow_twins_loss(const, const, 0.5).item() - 4.0) < 1e-9  # sum_i (1 - 0)^2


def _tiny(**kw) -> BarlowTwins:
    torch.manual_seed(0)
    bb = create_backbone("resnet18", in_chans=1, image_size=8, channels=[4, 8, 8, 8], stem_width=4)
    return BarlowTwins(bb, **{"proj_dims": [16, 16, 8], **kw})


def test_official_recipe_and_projector():
    hp, opt = BarlowTwins.defaults, BarlowTwins.optim_recipe()
    assert hp["proj_dims"] == [8192, 8192, 8192] and hp["lambd"] == 0.0051
    assert hp["bias_lr_scale"] * 0.2 == pytest.approx(0.0048)  # --learning-rate-biases / --learning-rate-weights
    assert (opt["optimizer"], opt["base_lr"], opt["weight_decay"], opt["warmup_epochs"]) == ("lars", 0.2, 1e-6, 10)
    assert BarlowTwins.presets["barlow_twins-1000ep"].batch_size == 2048
    m = BarlowTwins(create_backbone("resnet18", in_chans=3, image_size=32))
    lin = [x for x in m.projector if isinstance(x, torch.nn.Linear)]
    bns = [x for x in m.projector if isinstance(x, torch.nn.BatchNorm1d)]
    assert [(x.in_features, x.out_features) for x in lin] == [(512, 8192), (8192, 8192), (8192, 8192)]
    assert all(x.bias is None for x in lin) and len(bns) == 2  # BN-ReLU after the hidden Linears only
    assert isinstance(m.projector[-1], torch.nn.Linear) and m.momentum_pairs() == []
    views = BarlowTwins.view_recipes(BarlowTwins.defaults)
    assert [v["blur_p"] for v in views] == [1.0, 0.1] and [v["solarize_p"] for v in views] == [0.0, 0.2]
    assert views[0]["brightness_mode"] == "multiplicative" and views[0]["crop_scale"] == [0.08, 1.0]


@pytest.mark.parametrize("method", ["barlow_twins", "vicreg"])
@pytest.mark.parametrize("dims,message", [([], "proj_dims: bad value []; allowed: a non-empty list"),
                                          ([64, 0], "proj_dims[1]: bad value 0; allowed: an integer >= 1"),
                                          ("512", "proj_dims: bad value '512'; allowed: a non-empty list")])
def test_bad_projector_widths_fail_validation_naming_the_field(method, dims, message):
    from ssl_bench.errors import UserError
    from ssl_bench.config.suite import parse_suite

    suite = {"name": "s", "datasets": ["digits"], "backbones": ["resnet18"], "evaluations": ["knn"],
             "methods": [{"name": method, "params": {"proj_dims": dims}}]}
    with pytest.raises(UserError) as err:
        parse_suite(suite)
    assert str(err.value).startswith(f"methods[0].params.{message}"), str(err.value)


def test_biases_and_norms_learn_at_the_bias_rate():
    """[BT main.py L90-97, L167-168]: every ndim-1 parameter (biases, BN) at lr * 0.0048 / 0.2, no decay or
    LARS adaptation; every weight matrix at lr."""
    m = _tiny()
    opt = build_optimizer(m, m.optim_recipe(), lr=0.8)
    assert isinstance(opt, LARS)
    seen = {}
    for g in opt.param_groups:
        for p in g["params"]:
            seen[id(p)] = (g["lr"], g["lars_exclude"], g["weight_decay"])
    params = [p for p in m.parameters() if p.requires_grad]
    assert len(seen) == len(params)
    for p in params:
        if p.ndim <= 1:
            assert seen[id(p)] == (pytest.approx(0.8 * 0.024), True, 0.0)
        else:
            assert seen[id(p)] == (0.8, False, 1e-6)


def test_views_are_two_separate_forwards():
    """The official forward runs each view alone through the network (per-view BN statistics)."""
    m = _tiny()
    calls = []
    m.backbone.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    out = m([torch.randn(5, 1, 8, 8), torch.randn(5, 1, 8, 8)])
    assert calls == [5, 5] and out["loss"].ndim == 0 and torch.isfinite(out["loss"])


@pytest.mark.slow
def test_engine_training_on_digits_lowers_the_loss_with_finite_features(tmp_path):
    losses, feats = pretrain_on_digits(BarlowTwins, tmp_path, optim={"base_lr": 1.0, "warmup_epochs": 0},
                                       proj_dims=[64, 64, 64])
    # a constant embedding scores D = 64 (C = 0); decorrelated, invariant features score near 0
    assert losses[-1] < 0.6 * losses[0] and losses[-1] < 64 / 2, losses
    assert torch.isfinite(feats).all() and feats.std(dim=0).mean() > 1e-3  # not collapsed to one point
