"""Multi-crop in the engine (issue 23 item 2): views of their own sizes, each size built in one augmentation pass,
the method's batched forward per size, the step/epoch and before-optimizer-step hooks, and what the engine
promises around them (kill-and-resume bit-identical, images seen counts source images, the online head's views).
Prefetch on/off: tests/test_prefetch.py; FLOPs of every crop: tests/test_compute.py."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from augment_reference import gen, reference, rgb  # noqa: F401 - fixture
from conftest import metrics_rows
from multicrop_cases import BATCH, augment, digits, tiny
from ssl_bench.data import augment_ops
from ssl_bench.data.augment import MultiViewAugment, ViewRecipe, view_params_from_uniform
from ssl_bench.engine import checkpoint
from ssl_bench.engine.compute import compute_record
from ssl_bench.engine.online_head import OnlineLinear
from ssl_bench.engine.trainer import TrainSettings, pretrain
from ssl_bench.errors import UserError
from ssl_bench.method import OPTIM_DEFAULTS, Method, TrainProgress, multicrop_forward, size_groups
from ssl_bench.config.suite import parse_suite

CPU = torch.device("cpu")
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def settings(epochs: int = 3, **kw) -> TrainSettings:
    optim = {**OPTIM_DEFAULTS, "optimizer": "sgd", "base_lr": 0.5, "warmup_epochs": 1}
    return TrainSettings(**{"epochs": epochs, "batch_size": BATCH, "optim": optim, "device": CPU, "seed": 5,
                            "log_every": 1, "progress": False, **kw})


# ---- view sizes -------------------------------------------------------------------------------------------
def test_a_view_is_a_fraction_of_the_image_size_or_a_pixel_count():
    local = ViewRecipe(size_frac=96 / 224)
    assert (local.out_size(224), local.out_size(16), local.out_size(32)) == (96, 7, 14)  # round(6.857), round(13.7)
    assert ViewRecipe(size_frac=0.3, size_px=12).out_size(224) == 12  # an absolute size wins
    assert ViewRecipe().out_size(16) == 16
    assert "size_frac" not in ViewRecipe().to_dict() and "size_px" not in ViewRecipe().to_dict()  # run ids kept
    d = local.to_dict()
    assert d["size_frac"] == 96 / 224 and ViewRecipe.from_dict(d, "v") == local


@pytest.mark.parametrize("key,value,expected", [
    ("size_frac", 0, "v.size_frac: bad value 0; allowed: a number in (0, 1]"),
    ("size_frac", 1.5, "v.size_frac: bad value 1.5; allowed: a finite number in [0.0, 1.0]"),
    ("size_px", 2, "v.size_px: bad value 2; allowed: 0 (use size_frac) or an integer in [4, 4096] pixels"),
    ("size_px", "96", "v.size_px: bad value '96'"),
])
def test_bad_view_sizes_are_one_line_errors(key, value, expected):
    with pytest.raises(UserError) as err:
        ViewRecipe.from_dict({key: value}, "v")
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


def test_a_local_crop_smaller_than_4_px_fails_validation_naming_the_view():
    suite = {"name": "t", "datasets": [{"name": "digits", "image_size": 8}], "backbones": ["resnet18"],
             "methods": [{"name": "dino", "params": {"local_crops": 2, "local_size_frac": 0.4}}],
             "pretrain": {"epochs": 1, "batch_size": 64}, "evaluations": ["knn"]}
    with pytest.raises(UserError, match=r"^methods\[0\]\.augment\.view3\.size_frac: bad value 0\.4; allowed: a "
                                        r"fraction giving at least 4 px at image_size 8 \(this one gives 3 px"):
        parse_suite(suite)
    suite["methods"][0]["params"]["local_size_frac"] = 0.5
    assert [ViewRecipe.from_dict(v, "v").out_size(8) for v in parse_suite(suite).methods[0].views] == [8, 8, 4, 4]


# ---- the batched augmentation -----------------------------------------------------------------------------
def test_each_size_is_built_in_one_pass_and_every_view_matches_its_own_reference(rgb, monkeypatch):
    g1 = ViewRecipe(crop_scale=(0.3, 1.0), blur_p=1.0, solarize_p=0.0)
    g2 = ViewRecipe(crop_scale=(0.3, 1.0), blur_p=0.1, solarize_p=0.2)  # another probability: the same pass
    local = ViewRecipe(crop_scale=(0.05, 0.3), blur_p=0.5, size_frac=0.5)
    aug = MultiViewAugment([g1, g2, local, local, local], 40, MEAN, STD)
    assert aug.sizes == (40, 40, 20, 20, 20) and aug.groups == [(0, 2), (2, 5)]
    passes, real = [], augment_ops.resized_crop_flip
    monkeypatch.setattr(augment_ops, "resized_crop_flip", lambda x, *a, **k: passes.append(1) or real(x, *a, **k))
    g, by_hand = gen(3), gen(3)
    views = aug(rgb, g)
    assert len(passes) == 2  # one crop-and-resize pass per size
    assert [tuple(v.shape) for v in views] == [(24, 3, 40, 40)] * 2 + [(24, 3, 20, 20)] * 3
    for view, recipe, size in zip(views, aug.recipes, aug.sizes):  # declared order, each from its own draw
        u = torch.rand(len(rgb), 36, generator=by_hand)
        p = view_params_from_uniform(u, recipe, *rgb.shape[-2:])
        torch.testing.assert_close(view, reference(rgb, p, recipe, size, MEAN, STD), atol=2e-5 / 0.2, rtol=0)
    assert torch.equal(g.get_state(), by_hand.get_state())  # one 36-column draw per view, in view order
    assert not torch.equal(views[2], views[3])  # local crops are independent draws


def test_views_of_one_size_with_another_structure_or_order_are_separate_passes():
    a, b = ViewRecipe(), ViewRecipe(interpolation="bilinear")
    small = ViewRecipe(size_frac=0.5)
    assert MultiViewAugment([a, b, a], 32, MEAN, STD).groups == [(0, 1), (1, 2), (2, 3)]
    assert MultiViewAugment([a, small, a], 32, MEAN, STD).groups == [(0, 1), (1, 2), (2, 3)]


# ---- the method side: batched forward per size, progress, the gradient hook ------------------------------
class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls, self.conv = [], nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        self.calls.append(len(x))
        return self.conv(x).mean((2, 3))


def test_multicrop_forward_runs_each_run_of_same_size_views_as_one_batch():
    torch.manual_seed(0)
    net = Counting()
    views = [torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)] + [torch.randn(3, 1, 4, 4) for _ in range(3)]
    assert size_groups(views) == [(0, 2), (2, 5)]
    out = multicrop_forward(net, views)
    assert net.calls == [6, 9]
    torch.testing.assert_close(out, torch.cat([net(v) for v in views]))  # per-view forwards, same rows
    assert size_groups([views[0], views[2], views[1]]) == [(0, 1), (1, 2), (2, 3)]  # not consecutive: apart


class Hooked(Method):
    """A linear model on flattened views whose second layer is left out of every step of epoch 0."""

    def __init__(self):
        super().__init__(nn.Sequential(nn.Flatten(), nn.Linear(64, 4)))
        self.backbone.num_features = 4
        self.second, self.seen = nn.Linear(4, 1), []

    def training_step(self, views, labels=None):
        self.seen.append(self.progress)
        return {"loss": sum(self.second(self.backbone(v)).pow(2).mean() for v in views)}

    def before_optimizer_step(self):
        if self.progress.epoch == 0:
            for p in self.second.parameters():
                p.grad = None


def two_views(images, generator):
    x = images.float() / 255
    return [x + 0.01 * torch.randn(x.shape, generator=generator) for _ in range(2)]


@pytest.mark.parametrize("amp", [None, torch.float16])  # float16: the GradScaler's step
def test_progress_and_the_before_optimizer_step_hook(tmp_path, amp):
    torch.manual_seed(0)
    m = Hooked()
    second0 = m.second.weight.detach().clone()
    snapshots = []
    pretrain(m, digits(), two_views, settings(2, amp_dtype=amp, channels_last=False), tmp_path,
             on_step=lambda s: snapshots.append((m.second.weight.detach().clone(), m.backbone[1].weight.clone())))
    assert m.seen == [TrainProgress(s, 8, s // 4, 4) for s in range(8)]
    assert all(torch.equal(w, second0) for w, _ in snapshots[:4])  # frozen through epoch 0 (4 steps)
    assert not torch.equal(snapshots[4][0], second0)  # trained from epoch 1 on
    assert not torch.equal(snapshots[0][1], snapshots[1][1])  # the other layer trained all along


# ---- kill and resume, images seen, the online head --------------------------------------------------------
def _train(name: str, run_dir: Path, resume: bool = False) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    model = tiny(name)
    pretrain(model, digits(), augment(name), settings(3), run_dir, resume=resume)
    return model.state_dict()


@pytest.mark.parametrize("name", ["dino", "swav"])
def test_kill_in_a_multicrop_run_then_resume_is_bit_identical(name, tmp_path, monkeypatch):
    straight = _train(name, tmp_path / "straight")
    real = checkpoint.save_atomic

    def kill_before_epoch_2_is_saved(obj, path):
        if isinstance(obj, dict) and obj.get("epoch") == 2:
            raise KeyboardInterrupt
        return real(obj, path)

    monkeypatch.setattr(checkpoint, "save_atomic", kill_before_epoch_2_is_saved)
    with pytest.raises(KeyboardInterrupt):
        _train(name, tmp_path / "killed")
    monkeypatch.setattr(checkpoint, "save_atomic", real)
    assert checkpoint.load(tmp_path / "killed" / "checkpoint.pt")["epoch"] == 1
    resumed = _train(name, tmp_path / "killed", resume=True)  # epochs 1 and 2 again, from the epoch-1 state
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight), [k for k in straight
                                                                         if not torch.equal(straight[k], resumed[k])]
    assert [r["epoch"] for r in metrics_rows(tmp_path / "killed")] == [0, 1, 2]
    stateful = "center" if name == "dino" else "queue"
    assert straight[stateful].abs().sum() > 0  # the method's own state took part (and was checkpointed)


def test_images_seen_counts_source_images_not_crops(tmp_path):
    model, steps = tiny("dino"), 6  # 2 global + 2 local crops per image
    stats = pretrain(model, digits(), augment("dino"), settings(3, total_steps=steps), tmp_path)
    rows = metrics_rows(tmp_path)
    assert stats["steps"] == steps and [r["step"] for r in rows] == [4, 6]
    seen = sum(r["images_per_s"] * r["time_s"] for r in rows)
    assert seen == pytest.approx(steps * BATCH, rel=1e-9)  # not 4x: the crops are not images seen
    assert compute_record(stats, BATCH, CPU)["compute_images_seen"] == steps * BATCH


def test_the_online_head_learns_from_the_global_crops_only():
    model = tiny("dino", evaluate="student")  # the student's encoder sees every crop
    head = OnlineLinear(model.encoder(), 10, 0.1, BATCH, 0, CPU)
    images = digits(BATCH)
    views = augment("dino")(images.images, gen())
    with head.capture():
        model(views)
    assert [len(f) for side, f in head._feats] == [2 * BATCH, 2 * BATCH]  # globals, then locals (4 px)
    head.step(images.labels, 0.1)
    assert head._seen == 2 * BATCH  # 2 global crops per image, labelled; the local crops left out
    head.close()
