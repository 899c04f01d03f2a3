"""Paper presets: opt-in per suite entry, by epoch count, the batch they assume warned about, overridable;
and SimCLR's official v1 projector as the option its preset selects."""
import pytest
import torch

from ssl_bench.errors import UserError
from ssl_bench.heads import Scale, SimCLRHead
from ssl_bench.registry import METHODS
from ssl_bench.config.suite import parse_suite

# [DM configs/byol.py], transcribed independently of methods/byol.py: epochs -> (lr, wd, tau)
DM_BYOL = {40: (0.45, 1e-6, 0.97), 100: (0.45, 1e-6, 0.99), 300: (0.3, 1e-6, 0.99), 1000: (0.2, 1.5e-6, 0.996)}
# [M3 CONFIG.md] ResNet-50: epochs -> (lr, wd, m)
M3 = {100: (0.6, 1e-6, 0.99), 300: (0.3, 1e-6, 0.99), 1000: (0.3, 1.5e-6, 0.996)}


def suite(methods, epochs=100, batch=4096):
    raw = {"name": "t", "datasets": ["cifar10"], "backbones": [{"name": "resnet18"}], "methods": methods,
           "pretrain": {"epochs": epochs, "batch_size": batch}, "evaluations": ["knn"]}
    return parse_suite(raw)


@pytest.mark.parametrize("epochs", sorted(DM_BYOL))
def test_byol_paper_preset_follows_deepmind_by_epochs(epochs, capsys):
    m = suite([{"name": "byol", "preset": "paper"}], epochs=epochs).methods[0]
    lr, wd, tau = DM_BYOL[epochs]
    assert (m.optim["base_lr"], m.optim["weight_decay"], m.params["tau_base"]) == (lr, wd, tau)
    assert m.preset == f"byol-{epochs}ep" and m.optim["warmup_epochs"] == 10
    assert capsys.readouterr().err == ""  # batch 4096 and the preset's own epochs: nothing to warn about


@pytest.mark.parametrize("epochs", sorted(M3))
def test_moco_v3_paper_preset_follows_config_md(epochs):
    m = suite([{"name": "moco_v3", "preset": "paper"}], epochs=epochs).methods[0]
    assert (m.optim["base_lr"], m.optim["weight_decay"], m.params["tau_base"]) == M3[epochs]


def test_presets_are_opt_in_and_the_suite_still_overrides():
    plain = suite(["byol", "moco_v3", "simclr"], epochs=1000).methods
    for m in plain:  # no preset: the method's own defaults whatever the budget
        cls = METHODS.get(m.name)
        assert m.preset is None and m.params == cls.defaults
        assert m.optim["base_lr"] == cls.optim_recipe()["base_lr"]
    m = suite([{"name": "byol", "preset": "paper", "params": {"tau_base": 0.98}, "optim": {"base_lr": 0.25}}],
              epochs=1000).methods[0]
    assert (m.params["tau_base"], m.optim["base_lr"], m.optim["weight_decay"]) == (0.98, 0.25, 1.5e-6)


def test_departing_from_the_preset_budget_warns_naming_the_field(capsys):
    suite([{"name": "byol", "preset": "byol-300ep"}], epochs=100, batch=256)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "warning: methods[0].preset 'byol-300ep' assumes pretrain.batch_size 4096 [DM configs/byol.py]; this run "
        "uses 256 (lr still scales as base_lr * batch / 256, but the recipe was tuned at 4096)",
        "warning: methods[0].preset 'byol-300ep' is the 300-epoch recipe [DM configs/byol.py]; pretrain.epochs "
        "is 100"]
    suite([{"name": "moco_v2", "preset": "paper", "epochs": 3}], epochs=100, batch=256)
    assert capsys.readouterr().err == ""  # MoCo v2's recipe is for batch 256, any epoch count


@pytest.mark.parametrize("entry,match", [
    ({"name": "byol", "preset": "byol-200ep"}, r"methods\[0\]\.preset: bad value 'byol-200ep'; allowed: paper, "
                                               r"byol-40ep, byol-100ep, byol-300ep, byol-1000ep"),
    ({"name": "byol", "preset": "paper"}, r"methods\[0\]\.preset: bad value 'paper': byol has paper presets for "
                                          r"40, 100, 300, 1000 epochs, and pretrain.epochs is 200"),
    ({"name": "moco_v3", "preset": "paper", "epochs": 40}, r"and methods\[0\]\.epochs is 40"),
    ({"name": "random", "preset": "paper"}, r"allowed: none \(this method declares no presets\)"),
])
def test_bad_presets_are_one_line_user_errors(entry, match):
    with pytest.raises(UserError, match=match):
        suite([entry], epochs=200)


def test_simclr_preset_selects_the_official_v1_projector():
    m = suite([{"name": "simclr", "preset": "paper"}], epochs=800).methods[0]
    assert m.preset == "simclr-4096" and m.params["proj_output_bn"] is True and m.params["temperature"] == 0.1


def test_simclr_v1_head_has_bn_on_every_layer_and_a_shiftless_output_bn():
    torch.manual_seed(0)
    head = SimCLRHead(32, 32, 8, output_bn=True).train()
    linears = [m for m in head if isinstance(m, torch.nn.Linear)]
    bns = [m for m in head if isinstance(m, torch.nn.BatchNorm1d)]
    assert [lin.bias for lin in linears] == [None, None] and len(bns) == 2  # [SC model_util.py] use_bias=False
    assert bns[0].affine and not bns[1].affine and isinstance(head[-1], Scale)  # center=False, scale=True
    assert all(abs(float(lin.weight.detach().std()) - 0.01) < 0.003 for lin in linears)  # N(0, 0.01) kernels
    gamma = torch.linspace(0.5, 2.0, 8)
    with torch.no_grad():
        head[-1].weight.copy_(gamma)
        x = torch.randn(64, 32)
        z, pre = head(x), torch.nn.Sequential(*list(head)[:4])(x)  # pre: Linear-BN-ReLU-Linear, before the output BN
    # batch-normalized output, then only scaled: per-feature mean 0 (no beta to shift it)
    ref = torch.nn.functional.batch_norm(pre, None, None, training=True, eps=1e-5) * gamma
    assert torch.allclose(z, ref, atol=1e-5) and torch.allclose(z.mean(0), torch.zeros(8), atol=1e-5)


def test_simclr_default_head_is_unchanged():
    torch.manual_seed(0)
    head = SimCLRHead(32, 16, 8)
    assert [type(m).__name__ for m in head] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head[0].bias is not None and head[3].bias is not None
