"""Engine pieces: LARS against its formula and its exclusions, lr schedule, per-parameter lr groups."""
import pytest
import torch
from torch import nn

from ssl_bench.engine.optim import LARS, build_optimizer, param_groups
from ssl_bench.engine.schedules import scaled_lr, warmup_cosine
from ssl_bench.method import OPTIM_DEFAULTS


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def test_param_groups_exclude_bias_and_norm():
    m = _model()
    groups = param_groups(m, 1e-4, True)
    regular = {id(p) for p in groups[0]["params"]}
    excluded = {id(p) for p in groups[1]["params"]}
    assert regular == {id(m[0].weight), id(m[2].weight)}
    assert excluded == {id(m[0].bias), id(m[1].weight), id(m[1].bias), id(m[2].bias)}
    assert groups[1]["weight_decay"] == 0 and groups[1]["lars_exclude"]


def test_lars_step_matches_formula_and_exclusions():
    m = _model()
    opt = build_optimizer(m, {**OPTIM_DEFAULTS, "weight_decay": 0.1, "lars_eta": 1e-3, "momentum": 0.9}, lr=0.5)
    assert isinstance(opt, LARS)
    for p in m.parameters():
        p.grad = torch.randn_like(p)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    grads = {n: p.grad.clone() for n, p in m.named_parameters()}
    opt.step()
    for n, p in m.named_parameters():
        w, g = before[n], grads[n]
        if p.ndim > 1:  # decayed and adapted: g + wd w, scaled by eta |w| / |g + wd w|
            u = g + 0.1 * w
            u = u * (1e-3 * w.norm() / u.norm())
        else:  # bias / norm: plain momentum SGD, no decay, no trust ratio
            u = g
        torch.testing.assert_close(p.detach(), w - 0.5 * u)  # first step: momentum buffer = update


def test_lars_trust_ratio_is_one_for_zero_norm():
    w = nn.Parameter(torch.zeros(3, 3))
    opt = LARS([{"params": [w], "weight_decay": 0.0, "lars_exclude": False}], lr=1.0, eta=1e-3)
    w.grad = torch.ones(3, 3)
    opt.step()
    torch.testing.assert_close(w.detach(), -torch.ones(3, 3))


def test_lars_momentum_second_step():
    w = nn.Parameter(torch.ones(2))
    opt = LARS([{"params": [w], "weight_decay": 0.0, "lars_exclude": True}], lr=0.1, momentum=0.9)
    w.grad = torch.ones(2)
    opt.step()
    opt.step()  # m = 0.9 * 1 + 1 = 1.9 ; w = 1 - 0.1 - 0.19
    torch.testing.assert_close(w.detach(), torch.full((2,), 1 - 0.1 - 0.19))


def test_warmup_cosine_schedule():
    assert scaled_lr(0.45, 512) == 0.9
    assert warmup_cosine(0, 100, 10, 1.0) == 0.0
    assert abs(warmup_cosine(5, 100, 10, 1.0) - 0.5) < 1e-12
    assert abs(warmup_cosine(10, 100, 10, 1.0) - 1.0) < 1e-12
    assert abs(warmup_cosine(55, 100, 10, 1.0) - 0.5) < 1e-12
    assert abs(warmup_cosine(100, 100, 10, 1.0)) < 1e-12


def test_channels_last_guard_for_narrow_cpu_convs():
    from ssl_bench.engine.trainer import channels_last_safe

    cpu = torch.device("cpu")
    assert not channels_last_safe(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 8, 3)), cpu)
    assert channels_last_safe(nn.Sequential(nn.Conv2d(1, 16, 3), nn.Conv2d(16, 8, 3)), cpu)


class _TwoRates(nn.Module):
    """A toy method whose `lr_groups` names one layer at a fixed lr and another at a tenth of the schedule."""

    needs_labels = False

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone, self.fixed, self.slow = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 1)

    def forward(self, views, labels=None):
        x = views[0].flatten(1)
        return {"loss": self.slow(self.fixed(self.backbone(x))).pow(2).mean()}

    def momentum_pairs(self):
        return []

    def set_progress(self, progress):  # the Method hooks the trainer calls
        pass

    def before_optimizer_step(self):
        pass

    def lr_groups(self):
        return [{"params": list(self.fixed.parameters()), "fixed_lr": True},
                {"params": list(self.slow.parameters()), "lr_scale": 0.1}]


def test_lr_groups_fix_or_scale_the_schedule_per_parameter(tmp_path, monkeypatch):
    """Through the real training loop: at every step the fixed group sits at the peak, the scaled group at
    0.1 x the schedule, the rest at the schedule (warmup 1 of 4 steps, then cosine); decay exclusion still
    splits each group."""
    import math

    from ssl_bench.data.types import ImageSet
    from ssl_bench.engine import trainer

    made = []
    real = trainer.build_optimizer
    monkeypatch.setattr(trainer, "build_optimizer", lambda *a: made.append(real(*a)) or made[-1])
    model = _TwoRates()
    names = {id(p): n.split(".")[0] for n, p in model.named_parameters()}
    seen = []

    def record(step):
        seen.append({(names[id(g["params"][0])], g["weight_decay"] > 0): g["lr"] for g in made[0].param_groups})

    data = ImageSet(labels=torch.zeros(16, dtype=torch.long), images=torch.zeros(16, 1, 2, 2, dtype=torch.uint8))
    optim = {**OPTIM_DEFAULTS, "optimizer": "sgd", "base_lr": 2.56, "warmup_epochs": 0.25, "weight_decay": 1e-3}
    settings = trainer.TrainSettings(epochs=1, batch_size=4, optim=optim, device=torch.device("cpu"),
                                     channels_last=False, progress=False, log_every=100)
    trainer.pretrain(model, data, lambda x, g: [x.float() + torch.randn(x.shape, generator=g)], settings,
                     tmp_path, on_step=record)
    peak = 2.56 * 4 / 256
    schedule = [0.0] + [peak * 0.5 * (1 + math.cos(math.pi * k / 3)) for k in range(3)]  # steps 0-3
    assert len(seen) == 4
    for step, lrs in enumerate(seen):
        assert set(lrs) == {(n, wd) for n in ("backbone", "fixed", "slow") for wd in (True, False)}
        for (name, _), lr in lrs.items():
            want = {"backbone": schedule[step], "fixed": peak, "slow": 0.1 * schedule[step]}[name]
            assert lr == pytest.approx(want, abs=1e-12), (step, name)
