"""DINO's ViT-S/16 presets resolve to the official recipe, stay out of `preset: paper`, and build the optimizer
groups DINO's utils.get_params_groups builds (biases and 1-d tensors undecayed, pos_embed / cls_token decayed)."""
from __future__ import annotations

import pytest
import torch

from ssl_bench.config.suite import parse_suite
from ssl_bench.errors import UserError

# Transcribed from facebookresearch/dino main_dino.py argparse defaults and its README, independently of
# methods/dino.py: --optimizer adamw --lr 0.0005 (per 256) --warmup_epochs 10 --min_lr 1e-6 --weight_decay 0.04
# --weight_decay_end 0.4 --clip_grad 3.0 (utils.clip_gradients: per parameter) --freeze_last_layer 1
# --momentum_teacher 0.996 --use_bn_in_head false --global_crops_scale 0.4 1 --local_crops_number 8
# --local_crops_scale 0.05 0.4 --warmup_teacher_temp 0.04
DINO_VIT_OPTIM = {"optimizer": "adamw", "base_lr": 0.0005, "warmup_epochs": 10, "min_lr": 1e-6,
                  "weight_decay": 0.04, "weight_decay_end": 0.4, "clip_grad": 3.0, "clip_mode": "per_param"}
DINO_VIT_PARAMS = {"freeze_last_layer": 1, "momentum_teacher": 0.996, "use_bn_in_head": False,
                   "global_crop_scale": [0.4, 1.0], "local_crops": 8, "local_crop_scale": [0.05, 0.4],
                   "warmup_teacher_temp": 0.04}
# README: the vanilla 100-epoch command (main_dino.py defaults: teacher_temp 0.04, no warm-up, norm_last_layer
# true; 8 GPUs x 64) and the boosted 300-epoch one (--teacher_temp 0.07 --warmup_teacher_temp_epochs 30
# --norm_last_layer false; run_with_submitit.py: 2 nodes x 8 GPUs x 64)
BY_BUDGET = {100: (0.04, 0, True, 512), 300: (0.07, 30, False, 1024)}


def suite(preset, epochs, batch):
    raw = {"name": "t", "datasets": [{"name": "cifar10", "image_size": 32}],
           "backbones": [{"name": "vit_tiny_patch16_224", "kwargs": {"patch_size": 8, "depth": 2, "embed_dim": 48,
                                                                     "num_heads": 2}}],
           "methods": [{"name": "dino", "preset": preset}],
           "pretrain": {"epochs": epochs, "batch_size": batch}, "evaluations": ["knn"]}
    return parse_suite(raw)


@pytest.mark.parametrize("epochs", sorted(BY_BUDGET))
def test_dino_vit_small_presets_follow_main_dino_and_the_readme(epochs, capsys):
    temp, warm, norm_last, batch = BY_BUDGET[epochs]
    m = suite(f"dino-vit_small-{epochs}ep", epochs, batch).methods[0]
    assert {k: m.optim[k] for k in DINO_VIT_OPTIM} == DINO_VIT_OPTIM
    assert {k: m.params[k] for k in DINO_VIT_PARAMS} == DINO_VIT_PARAMS
    assert (m.params["teacher_temp"], m.params["warmup_teacher_temp_epochs"], m.params["norm_last_layer"]) == \
        (temp, warm, norm_last)
    assert (m.optim["exclude_bias_and_norm"], m.optim["exclude_tokens"]) == (True, False)
    assert capsys.readouterr().err == ""  # its own batch and epochs: no departure warning
    suite(f"dino-vit_small-{epochs}ep", epochs, 256)
    assert f"assumes pretrain.batch_size {batch}" in capsys.readouterr().err


def test_paper_stays_the_resnet_recipe_and_vit_presets_are_named_only(capsys):
    assert suite("paper", 800, 4080).methods[0].optim["optimizer"] == "lars"
    with pytest.raises(UserError, match="dino has paper presets for 800 epochs, and pretrain.epochs is 100"):
        suite("paper", 100, 512)
    raw_plain = suite(None, 100, 512)  # no preset at 100 epochs: no warning pointing at the ViT recipe
    assert raw_plain.methods[0].optim["optimizer"] == "lars" and "preset is not set" not in capsys.readouterr().err


def test_the_preset_builds_dinos_parameter_groups_and_a_schedule_from_0_04_to_0_4():
    from ssl_bench.backbones import create_backbone
    from ssl_bench.engine.optim import build_optimizer, schedule_step
    from ssl_bench.registry import METHODS

    m = suite("dino-vit_small-100ep", 100, 512).methods[0]
    torch.manual_seed(0)
    net = create_backbone("vit_tiny_patch16_224", in_chans=1, image_size=32, patch_size=8, depth=2, embed_dim=48,
                          num_heads=2)
    model = METHODS.get("dino")(net, **{**m.params, "out_dim": 16, "hidden_dim": 16, "bottleneck_dim": 8})
    opt = build_optimizer(model, m.optim, lr=1e-3)
    decayed = {id(p) for g in opt.param_groups if g["wd_scale"] == 1.0 for p in g["params"]}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # DINO utils.get_params_groups: name.endswith(".bias") or len(param.shape) == 1 -> not regularized
        assert (id(p) in decayed) == (not (name.endswith(".bias") or p.ndim == 1)), name
    assert id(model.backbone.pos_embed) in decayed and id(model.backbone.cls_token) in decayed
    total = 100
    for step, expected in ((0, 0.04), (total // 2, (0.04 + 0.4) / 2), (total, 0.4)):
        schedule_step(opt, m.optim, step, total, 0, 1e-3)
        assert opt.param_groups[0]["weight_decay"] == pytest.approx(expected)
