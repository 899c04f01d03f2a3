"""Issue 25, items 4-9: the recipe drift of the reproduction suites, each fixed or a named option, against the
official code's values restated here (each with its source) or an independent implementation written here."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_bench.config.suite import load_suite, parse_suite
from ssl_bench.create import create_backbone, create_method
from ssl_bench.data.augment_recipe import ViewRecipe
from ssl_bench.data.view_params import sample_view_params
from ssl_bench.errors import UserError

REPO = Path(__file__).resolve().parent.parent


# --- item 8: DeepMind's crop sampler -----------------------------------------------------------------------------

def deepmind_mean_area(h: int, w: int, n: int = 1000) -> float:
    """E[crop area] / (h w) of [DM utils/dataset.py:206-233] by the midpoint rule on an n x n grid: area fraction
    s ~ U[0.08, 1], log ratio ~ U[log 3/4, log 4/3], width round(sqrt(s h w r)) and height round(sqrt(s h w / r))
    (tf.round: half to even, as np.round), each clamped to the image."""
    s = 0.08 + (1 - 0.08) * (np.arange(n) + 0.5) / n
    log_r = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * (np.arange(n) + 0.5) / n
    area, ratio = s[:, None] * h * w, np.exp(log_r)[None, :]
    cw = np.minimum(np.round(np.sqrt(area * ratio)), w)
    ch = np.minimum(np.round(np.sqrt(area / ratio)), h)
    return float((cw * ch).mean() / (h * w))


def torchvision_mean_area(h: int, w: int, n: int = 20000) -> float:
    """torchvision's own RandomResizedCrop.get_params (10 tries, then a centre crop) on an h x w image."""
    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(0)
    img = torch.empty(3, h, w)
    areas = [ch * cw for _, _, ch, cw in (RandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3])
                                          for _ in range(n))]
    return float(np.mean(areas) / (h * w))


@pytest.mark.parametrize("h, w", [(375, 500), (500, 500), (333, 500)])
def test_deepmind_crop_sampler_has_deepmind_mean_area_and_torchvision_smaller_crops(h, w):
    gen = torch.Generator().manual_seed(0)

    def ours(sampler: str) -> float:
        p = sample_view_params(ViewRecipe(crop_sampler=sampler), 200000, h, w, gen, "cpu")
        assert (p.height <= h).all() and (p.width <= w).all() and (p.top + p.height <= h).all()
        return float((p.height * p.width).double().mean() / (h * w))

    dm, tv = deepmind_mean_area(h, w), torchvision_mean_area(h, w)
    assert abs(ours("deepmind") - dm) < 0.01
    assert abs(ours("torchvision") - tv) < 0.01  # the default stays torchvision's sampler
    # the audit measured 0.519 vs 0.433 (375 x 500), 0.534 vs 0.478 (500 x 500), 0.505 vs 0.390 (333 x 500)
    assert dm - tv > 0.04


def test_crop_sampler_is_a_view_option_that_keeps_old_view_dicts():
    assert "crop_sampler" not in ViewRecipe().to_dict()  # run hashes of suites that never set it do not move
    dm = ViewRecipe.from_dict({"crop_sampler": "deepmind"}, "view")
    assert ViewRecipe.from_dict(dm.to_dict(), "view") == dm
    with pytest.raises(UserError, match="view.crop_sampler: bad value 'tf'.*torchvision, deepmind"):
        ViewRecipe.from_dict({"crop_sampler": "tf"}, "view")


# --- item 4: lightly's BYOL ----------------------------------------------------------------------------------------

def test_lightly_suite_trains_byol_on_simclr_transform_with_lightly_effective_lr():
    s = load_suite(REPO / "suites/cifar10_lightly.yaml")
    byol, simclr = s.methods[0], s.methods[1]
    # SimCLRTransform(input_size=32, cj_strength=0.5, gaussian_blur=0.0) [lightly@42a6a924 cifar10_benchmark.py
    # :169-173, :237]: ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s) with s = 0.5, p 0.8, grayscale 0.2, no blur,
    # no solarization, RandomResizedCrop scale (0.08, 1) bilinear, flip 0.5, both views alike
    want = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1, "jitter_p": 0.8, "grayscale_p": 0.2,
            "blur_p": 0.0, "solarize_p": 0.0, "crop_scale": [0.08, 1.0], "interpolation": "bilinear", "flip_p": 0.5,
            "brightness_mode": "multiplicative", "jitter_random_order": True}
    for view in byol.views:
        assert {k: view[k] for k in want} == want
    assert byol.views[0] == byol.views[1] == simclr.views[0]
    assert (byol.optim["base_lr"], byol.optim["weight_decay"]) == (0.03, 2.0e-3)
    assert byol.params["head_last_bias"] is True  # lightly heads.py:41-42: a bias where no BN follows


def test_quarter_lr_and_four_times_weight_decay_give_lightly_byol_updates_exactly():
    """ssl-bench's 2 - 2cos sum is 4 + 4 x lightly's 0.5 (negcos + negcos) [cifar10_benchmark.py@42a6a924:532]:
    SGD at lr / 4 and weight decay x 4 takes lightly's steps (float64, three steps with momentum)."""
    from ssl_bench.methods.losses import byol_loss

    def lightly_loss(p1, p2, z1, z2):  # 0.5 * (NegativeCosineSimilarity(p0, z1) + (p1, z0)), written out
        return 0.5 * (-F.cosine_similarity(p1, z2).mean() - F.cosine_similarity(p2, z1).mean())

    torch.manual_seed(0)
    x1, x2, z1, z2 = (torch.randn(6, 5, dtype=torch.float64) for _ in range(4))
    start = torch.nn.Linear(5, 5).double()

    def train(loss_fn, lr: float, wd: float) -> list[torch.Tensor]:
        net = torch.nn.Linear(5, 5).double()
        net.load_state_dict(start.state_dict())
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
        for _ in range(3):
            opt.zero_grad()
            loss_fn(net(x1), net(x2), z1, z2).backward()
            opt.step()
        return [p.detach() for p in net.parameters()]

    lr = 0.12 * 512 / 256  # lightly: 6e-2 * batch / 128 at batch 512 [cifar10_benchmark.py:123-124, :544]
    for a, b in zip(train(byol_loss, lr / 4, 5e-4 * 4), train(lightly_loss, lr, 5e-4)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# --- item 5: solo-learn's CIFAR stem -------------------------------------------------------------------------------

@pytest.mark.parametrize("suite", ["suites/cifar10.yaml", "suites/cifar100.yaml"])
def test_solo_learn_suites_use_the_padding_2_stem(suite):
    s = load_suite(REPO / suite)
    b = s.backbones[0]
    net = create_backbone(b.name, in_chans=3, image_size=32, small_stem=b.small_stem, **b.kwargs)
    conv = net.conv1
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (1, 1), (2, 2))
    maps = []
    conv.register_forward_hook(lambda m, i, o: maps.append(o.shape[-2:]))
    net(torch.zeros(1, 3, 32, 32))
    assert tuple(maps[0]) == (32 + 2 * 2 - 3 + 1,) * 2  # 34 x 34 [solo/methods/base.py:200-201]
    assert s.methods[0].params["head_last_bias"] is True  # solo/methods/byol.py: nn.Linear with its bias


def test_stem_padding_is_checked():
    with pytest.raises(UserError, match="stem_padding=5.*an integer 0-3"):
        create_backbone("resnet18", in_chans=3, image_size=32, stem_padding=5)
    with pytest.raises(UserError, match="stem_padding=2 applies to the small-image stem"):
        create_backbone("resnet18", in_chans=3, image_size=224, stem_padding=2)
    assert create_backbone("resnet18", in_chans=3, image_size=32).conv1.padding == (1, 1)  # the default stays


# --- item 6: one lr convention in the ImageNet suites ----------------------------------------------------------------

@pytest.mark.parametrize("epochs", [300, 1000])
def test_imagenet_suites_state_every_eval_lr_per_256_images(epochs, monkeypatch, tmp_path):
    """linear_sgd and semi_supervised read their grids alike: per 256 images, x batch / 256, as DM's eval code
    scales every eval lr [DM utils/schedules.py:34]; the suite says so."""
    from PIL import Image

    from ssl_bench.create import create_evaluation

    for split in ("train", "val"):
        for wnid in ("n01", "n02"):
            (tmp_path / "data" / "imagenet" / split / wnid).mkdir(parents=True)
            Image.new("RGB", (8, 6)).save(tmp_path / "data" / "imagenet" / split / wnid / f"{wnid}_0.JPEG")
    for name in ("1percent.txt", "10percent.txt"):
        (tmp_path / "data" / "imagenet" / name).write_text("n01_0.JPEG\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    path = REPO / f"suites/imagenet/byol_{epochs}ep.yaml"
    s = load_suite(path)
    trained = [e for e in s.evaluations if e.name in ("linear_sgd", "semi_supervised")]
    assert len(trained) == 3 and all(e.params["lr_batch_scaling"] is True for e in trained)
    for e in trained:
        assert create_evaluation(e.name, **e.params).recipe({"seed": 0})["lrs_per_256"] == e.params["lrs"]
    assert "One lr convention for every evaluation that trains" in path.read_text()


# --- item 7: the preset a run at a paper's epoch count does not set ---------------------------------------------------

BASE = {"name": "t", "datasets": ["digits"], "backbones": ["resnet18"], "evaluations": ["knn"]}


@pytest.mark.parametrize("entry, warned", [
    ({"name": "byol", "epochs": 1000}, True),  # the 100-epoch defaults at 1000 epochs
    ({"name": "byol", "epochs": 300}, True),  # base lr 0.45 vs the preset's 0.3
    ({"name": "byol", "epochs": 100}, False),  # the defaults are the 100-epoch preset
    ({"name": "byol", "epochs": 12}, False),  # no paper preset for 12 epochs
    ({"name": "byol", "epochs": 1000, "preset": "paper"}, False),
    ({"name": "byol", "epochs": 1000, "params": {"tau_base": 0.99},
      "optim": {"base_lr": 1.0, "weight_decay": 1e-5}}, False),  # a recipe of its own (solo-learn's)
])
def test_missing_preset_warning_names_the_field(entry, warned, capsys):
    parse_suite({**BASE, "methods": [entry]})
    err = capsys.readouterr().err
    assert ("methods[0].preset is not set" in err) == warned, err
    if warned:
        assert f"'byol-{entry['epochs']}ep' [DM configs/byol.py]" in err and "base_lr 0.45" in err


# --- item 9 ------------------------------------------------------------------------------------------------------------

def test_byol_heads_end_without_bias_by_default():
    bb = create_backbone("resnet18", in_chans=3, image_size=16, channels=[8, 8, 8, 8], stem_width=8)
    byol = create_method("byol", bb, proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16)
    assert byol.projector[-1].bias is None and byol.predictor[-1].bias is None  # [DM utils/networks.py:44]
    assert byol.target_projector[-1].bias is None
    bb = create_backbone("resnet18", in_chans=3, image_size=16, channels=[8, 8, 8, 8], stem_width=8)
    solo = create_method("byol", bb, proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16, head_last_bias=True)
    assert solo.projector[-1].bias is not None


def test_zero_init_last_is_off_in_the_imagenet_backbones():
    """[DM README.md:109-111]: the paper's runs kept every BN gamma at 1; timm zero-initialises each block's last
    BN unless `zero_init_last: false` (the ImageNet suites' backbone kwargs)."""
    text = (REPO / "suites/imagenet/byol_1000ep.yaml").read_text()
    assert "kwargs: {zero_init_last: false}" in text
    paper = create_backbone("resnet50", in_chans=3, image_size=224, small_stem=False, zero_init_last=False)
    timm_default = create_backbone("resnet50", in_chans=3, image_size=224, small_stem=False)
    last = lambda net: torch.cat([blk.bn3.weight.detach() for layer in (net.layer1, net.layer4) for blk in layer])  # noqa: E731
    assert torch.all(last(paper) == 1) and torch.all(last(timm_default) == 0)


@pytest.mark.parametrize("world, sync_bn, warned", [(1, True, True), (1, False, True), (4, False, True),
                                                     (4, True, False)])
def test_moco_v2_warns_where_neither_shuffle_bn_nor_sync_bn_is_in_effect(world, sync_bn, warned):
    from ssl_bench.registry import METHODS

    note = METHODS.get("moco_v2").batch_norm_warning(world, sync_bn)
    assert (note is not None) == warned
    if warned:
        assert "shuffle-BN is not implemented" in note and "pretrain.sync_bn" in note
    assert METHODS.get("byol").batch_norm_warning(1, False) is None


# --- item 2: nominal label fractions -----------------------------------------------------------------------------------

def test_subset_files_declare_their_nominal_fraction(tmp_path):
    from ssl_bench.evalkit.label_subsets import declared_fraction
    from ssl_bench.registry import EVALUATIONS

    for name, text, frac in (("1percent.txt", "a.JPEG\n", 0.01), ("10percent.txt", "a.JPEG\n", 0.1),
                             ("mine.txt", "# label_fraction: 0.05\na.JPEG\n", 0.05)):
        (tmp_path / name).write_text(text)
        assert declared_fraction(tmp_path / name, "f") == frac
    (tmp_path / "mine2.txt").write_text("a.JPEG\n")
    with pytest.raises(UserError, match="params.subset_fraction: missing for subset file 'mine2.txt'"):
        EVALUATIONS.get("semi_supervised")(subset_file=str(tmp_path / "mine2.txt"))
    semi = EVALUATIONS.get("semi_supervised")(subset_file=str(tmp_path / "mine2.txt"), subset_fraction=0.02)
    assert semi.params["subset_fraction"] == 0.02
