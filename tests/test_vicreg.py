"""VICReg: the loss (value and gradient, float64) against the official formula written out entry by entry, the
official recipe and expander, and a short training run on digits."""
import pytest
import torch

from digits_pretrain import pretrain_on_digits
from ssl_bench.backbones import create_backbone
from ssl_bench.methods.losses import vicreg_loss
from ssl_bench.methods.vicreg import VICReg


def _loop_loss(z1, z2, sim, std, cov) -> torch.Tensor:
    """[VR main_vicreg.py L194-220] over scalars, on one process (the gathered batch is the batch): invariance
    = mean squared difference over rows and dims; per view, std_j = sqrt(unbiased Var_j + 1e-4), variance term
    mean_j relu(1 - std_j) (the two views averaged); covariance C_ij = sum_b (z_bi - m_i)(z_bj - m_j) / (N - 1),
    term sum_{i != j} C_ij^2 / D (the two views summed)."""
    n, d = z1.shape
    inv = sum((z1[b, j] - z2[b, j]) ** 2 for b in range(n) for j in range(d)) / (n * d)

    def terms(z):
        mean = [sum(z[b, j] for b in range(n)) / n for j in range(d)]
        var_term = 0
        for j in range(d):
            s = torch.sqrt(sum((z[b, j] - mean[j]) ** 2 for b in range(n)) / (n - 1) + 1e-4)
            var_term = var_term + torch.clamp(1 - s, min=0)
        cov_term = 0
        for i in range(d):
            for j in range(d):
                if i != j:
                    c = sum((z[b, i] - mean[i]) * (z[b, j] - mean[j]) for b in range(n)) / (n - 1)
                    cov_term = cov_term + c ** 2
        return var_term / d, cov_term / d

    v1, c1 = terms(z1)
    v2, c2 = terms(z2)
    return sim * inv + std * (v1 + v2) / 2 + cov * (c1 + c2)


@pytest.mark.parametrize("coeffs", [(25.0, 25.0, 1.0), (1.0, 3.0, 7.0)])
def test_loss_value_and_gradient_match_the_formula(coeffs):
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([0.3, 2.0, 0.8, 1.5], dtype=torch.float64)  # some dims under the std hinge, some over
    z1 = torch.randn(7, 4, generator=g, dtype=torch.float64) * scale
    z2 = 0.5 * z1 + torch.randn(7, 4, generator=g, dtype=torch.float64) * scale
    got = [z.clone().requires_grad_(True) for z in (z1, z2)]
    ref = [z.clone().requires_grad_(True) for z in (z1, z2)]
    loss = vicreg_loss(got[0], got[1], got[0], got[1], *coeffs)
    want = _loop_loss(ref[0], ref[1], *coeffs)
    loss.backward()
    want.backward()
    assert abs(loss.item() - want.item()) < 1e-10
    for a, b in zip(got, ref):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)
    assert all(a.grad.abs().sum() > 0 for a in got)


def test_invariance_uses_the_local_rows_and_the_rest_the_gathered_ones():
    """Variance and covariance read only the gathered arguments; invariance only this process's rows."""
    g = torch.Generator().manual_seed(1)
    z1, z2, o1, o2 = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(4))
    only_inv = vicreg_loss(z1, z2, o1, o2, 1.0, 0.0, 0.0)
    assert abs(only_inv.item() - ((z1 - z2) ** 2).mean().item()) < 1e-12
    assert abs(vicreg_loss(z1, z2, o1, o2, 0.0, 1.0, 1.0).item() - vicreg_loss(o1, o2, o1, o2, 0.0, 1.0, 1.0).item()) \
        < 1e-12


def test_official_recipe_and_expander():
    hp, opt = VICReg.defaults, VICReg.optim_recipe()
    assert hp["proj_dims"] == [8192, 8192, 8192]
    assert (hp["sim_coeff"], hp["std_coeff"], hp["cov_coeff"]) == (25.0, 25.0, 1.0)
    assert (opt["optimizer"], opt["base_lr"], opt["weight_decay"], opt["warmup_epochs"]) == ("lars", 0.2, 1e-6, 10)
    assert opt["exclude_bias_and_norm"]
    presets = VICReg.presets
    assert (presets["vicreg-1000ep"].batch_size, presets["vicreg-1000ep"].optim["base_lr"]) == (2048, 0.2)
    assert (presets["vicreg-100ep"].batch_size, presets["vicreg-100ep"].optim["base_lr"]) == (512, 0.3)
    m = VICReg(create_backbone("resnet18", in_chans=3, image_size=32))
    lin = [x for x in m.projector if isinstance(x, torch.nn.Linear)]
    assert [(x.in_features, x.out_features) for x in lin] == [(512, 8192), (8192, 8192), (8192, 8192)]
    assert [x.bias is not None for x in lin] == [True, True, False]  # [VR main_vicreg.py L228, L231]
    assert sum(isinstance(x, torch.nn.BatchNorm1d) for x in m.projector) == 2 and m.momentum_pairs() == []
    assert VICReg.view_recipes(VICReg.defaults)[1]["solarize_p"] == 0.2


@pytest.mark.slow
def test_engine_training_on_digits_lowers_the_loss_with_finite_features(tmp_path):
    losses, feats = pretrain_on_digits(VICReg, tmp_path, optim={"base_lr": 1.0, "warmup_epochs": 0},
                                       proj_dims=[64, 64, 64])
    assert losses[-1] < 0.95 * losses[0], losses
    assert torch.isfinite(feats).all() and feats.std(dim=0).mean() > 1e-3  # not collapsed to one point
