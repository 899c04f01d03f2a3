"""What ViT recipes need from the engine: the weight-decay rule, wd schedule, gradient clipping and layer-wise lr
decay, each against a list, formula or reference written here; and the suite fields' one-line errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ssl_bench.backbones import create_backbone
from ssl_bench.create import create_dataset
from ssl_bench.engine import checkpoint
from ssl_bench.engine.layer_decay import layer_scales
from ssl_bench.engine.optim import build_optimizer, clip_gradients, param_groups
from ssl_bench.engine.schedules import cosine_weight_decay
from ssl_bench.engine.trainer import TrainSettings, pretrain
from ssl_bench.method import OPTIM_DEFAULTS, Method
from ssl_bench.config.suite import parse_suite

CPU = torch.device("cpu")


def _vit(depth: int = 2, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return create_backbone("vit_tiny_patch16_224", in_chans=1, image_size=8, patch_size=4, depth=depth,
                           embed_dim=32, num_heads=2, **kwargs)


class _Toy(Method):
    """A ViT and a linear head with a BatchNorm: every kind of parameter the decay rule sorts."""

    def __init__(self, backbone: nn.Module, num_classes: int | None = None, **params):
        super().__init__(backbone, num_classes, **params)
        self.head = nn.Sequential(nn.Linear(backbone.num_features, 8), nn.BatchNorm1d(8))

    def training_step(self, views, labels=None):
        return {"loss": 100 * self.head(self.backbone(views[0])).square().mean()}


def _wd_zero_by_hand(model: nn.Module, tokens: bool = True) -> set[str]:
    """Names that must not be decayed: biases, LayerNorm / BatchNorm weights, and the ViT's pos_embed and
    cls_token, found from module types and names (not through the optimizer code)."""
    out = set()
    for mod_name, mod in model.named_modules():
        for p_name, _ in mod.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if p_name == "bias" or isinstance(mod, (nn.LayerNorm, nn.BatchNorm1d)):
                out.add(full)
            if tokens and p_name in ("pos_embed", "cls_token"):
                out.add(full)
    return out


def _names_with_wd(model: nn.Module, groups: list[dict], wd: float = 0.0) -> set[str]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)] for g in groups if g["weight_decay"] == wd for p in g["params"]}


def test_exactly_norms_biases_pos_embed_and_cls_token_get_no_weight_decay():
    model = _Toy(_vit())
    expected = _wd_zero_by_hand(model)
    assert {"backbone.pos_embed", "backbone.cls_token", "backbone.norm.weight", "backbone.blocks.1.norm2.bias",
            "head.1.weight"} <= expected
    opt = build_optimizer(model, {**OPTIM_DEFAULTS, "optimizer": "adamw", "weight_decay": 0.05}, lr=1e-3)
    assert _names_with_wd(model, opt.param_groups) == expected
    every = {n for n, p in model.named_parameters()}
    assert _names_with_wd(model, opt.param_groups, 0.05) == every - expected  # everything else is decayed
    dino_rule = param_groups(model, 0.05, exclude_bias_and_norm=True, exclude_tokens=False)  # DINO decays tokens
    assert _names_with_wd(model, dino_rule) == _wd_zero_by_hand(model, tokens=False)
    assert _names_with_wd(model, param_groups(model, 0.05, False, False)) == set()  # MoCo v3: all decayed


def test_weight_decay_schedule_is_dinos_cosine():
    total = 37
    # DINO utils.cosine_scheduler(0.04, 0.4, epochs, niter) with no warmup, written here with numpy
    iters = np.arange(total)
    dino = 0.4 + 0.5 * (0.04 - 0.4) * (1 + np.cos(np.pi * iters / len(iters)))
    ours = [cosine_weight_decay(k, total, 0.04, 0.4) for k in range(total)]
    np.testing.assert_allclose(ours, dino, rtol=0, atol=1e-12)
    assert cosine_weight_decay(5, total, 0.1, None) == 0.1  # constant without an end value


def _train(tmp_path, optim: dict, epochs: int = 2, record=None) -> tuple[_Toy, dict]:
    """A few steps of _Toy on 128 digits; record(method) runs after each optimizer step."""
    bundle = create_dataset("digits")
    data = bundle.train.subset(torch.arange(128))
    method = _Toy(_vit())
    s = TrainSettings(epochs=epochs, batch_size=32, optim={**OPTIM_DEFAULTS, **optim}, device=CPU,
                      channels_last=False, progress=False)

    def views(images, gen):
        return [images.float() / 255]

    pretrain(method, data, views, s, tmp_path, on_step=(lambda step: record(method)) if record else None)
    return method, checkpoint.load(tmp_path / "checkpoint.pt")


def test_the_trainer_follows_the_lr_and_wd_schedules_per_group(tmp_path):
    optim = {"optimizer": "adamw", "base_lr": 1e-3, "weight_decay": 0.04, "weight_decay_end": 0.4,
             "warmup_epochs": 1, "min_lr": 1e-6, "layer_decay": 0.5}
    method, state = _train(tmp_path, optim)
    total, last = 8, 7  # 2 epochs of 128 / 32 steps; the checkpoint holds the last step's values
    peak = 1e-3 * 32 / 256
    lr = 1e-6 + (peak - 1e-6) * 0.5 * (1 + math.cos(math.pi * (last - 4) / (total - 4)))
    wd = 0.4 + 0.5 * (0.04 - 0.4) * (1 + math.cos(math.pi * last / total))
    groups = state["optimizer"]["param_groups"]
    for g in groups:
        assert g["lr"] == pytest.approx(lr * g["lr_scale"], rel=1e-12)
        assert g["weight_decay"] == pytest.approx(wd if g["wd_scale"] else 0.0, rel=1e-12)
    assert {g["lr_scale"] for g in groups} == {0.5 ** 3, 0.5 ** 2, 0.5, 1.0}  # embeddings, 2 blocks, top


def test_clip_grad_bounds_the_total_norm_during_training(tmp_path):
    def norms_of(name: str, optim: dict) -> list[float]:
        seen = []

        def record(method):  # after the step, the gradients it used are still on the parameters
            grads = [p.grad for p in method.parameters() if p.grad is not None]
            seen.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

        (tmp_path / name).mkdir()
        _train(tmp_path / name, {"optimizer": "sgd", "base_lr": 1e-3, "warmup_epochs": 0, **optim}, epochs=1,
               record=record)
        return seen

    assert min(norms_of("free", {})) > 0.5  # without clipping the gradients are larger than the bound below
    assert max(norms_of("clipped", {"clip_grad": 0.5})) <= 0.5 * (1 + 1e-5)


def test_clip_gradients_against_torch_and_dinos_per_parameter_rule():
    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(5, 3)), nn.Parameter(torch.randn(7)), nn.Parameter(torch.randn(2, 2))]
    grads = [torch.randn_like(p) * s for p, s in zip(params, (10.0, 0.01, 3.0))]
    ref = [nn.Parameter(p.detach().clone()) for p in params]
    for p, r, g in zip(params, ref, grads):
        p.grad, r.grad = g.clone(), g.clone()
    clip_gradients(params, 1.5, "total")
    torch.nn.utils.clip_grad_norm_(ref, 1.5)
    for p, r in zip(params, ref):
        torch.testing.assert_close(p.grad, r.grad)
    for p, g in zip(params, grads):
        p.grad = g.clone()
    clip_gradients(params, 1.5, "per_param")
    for p, g in zip(params, grads):  # DINO utils.clip_gradients, each tensor alone
        coef = 1.5 / (g.norm() + 1e-6)
        torch.testing.assert_close(p.grad, g * coef if coef < 1 else g)


def test_layer_decay_scales_follow_maes_formula():
    depth, decay = 3, 0.65
    model = _Toy(_vit(depth=depth))
    scales = layer_scales(model, decay)
    num_layers = depth + 1  # MAE lr_decay.py: len(blocks) + 1, scale = decay ** (num_layers - layer_id)

    def mae_layer(name: str) -> int:  # get_layer_id_for_vit, on names inside the ViT
        if name in ("cls_token", "pos_embed") or name.startswith("patch_embed"):
            return 0
        if name.startswith("blocks"):
            return int(name.split(".")[1]) + 1
        return num_layers

    for name, _ in model.named_parameters():
        inner = name.removeprefix("backbone.")
        layer = mae_layer(inner) if name.startswith("backbone.") else num_layers
        assert scales[name] == (layer, decay ** (num_layers - layer)), name
    groups = param_groups(model, 0.05, layer_decay=decay)
    assert {round(g["lr_scale"], 12) for g in groups} == {round(decay ** k, 12) for k in range(num_layers + 1)}


SUITE = """
name: fields
datasets: [{{name: digits, image_size: 8}}]
backbones: [{backbone}]
methods: [{{name: moco_v3, optim: {{{optim}}}}}]
pretrain: {{epochs: 1, batch_size: 64, amp: "off"}}
evaluations: [{{name: knn, params: {{k: 10}}}}]
"""
VIT_B = "{name: vit_tiny_patch16_224, kwargs: {patch_size: 4, depth: 1}}"
R18 = "{name: resnet18, kwargs: {channels: [8, 8, 8, 8]}}"


@pytest.mark.parametrize("optim, backbone, message", [
    ("weight_decay_end: -1", VIT_B, "methods[0].optim.weight_decay_end: bad value -1; allowed: a finite number >= 0"),
    ("clip_grad: 0", VIT_B, "methods[0].optim.clip_grad: bad value 0; allowed: a number > 0, or null (no clipping)"),
    ("clip_mode: each", VIT_B, "methods[0].optim.clip_mode: bad value 'each'; allowed: "),
    ("layer_decay: 1.5", VIT_B, "methods[0].optim.layer_decay: bad value 1.5; allowed: a number in (0, 1]; 1.0: off"),
    ("min_lr: -0.1", VIT_B, "methods[0].optim.min_lr: bad value -0.1"),
    ("exclude_tokens: 3", VIT_B, "methods[0].optim.exclude_tokens: bad value 3"),
    ("layer_decay: 0.75", R18, "methods[0].optim.layer_decay: bad value 0.75; allowed: 1.0 (off) with backbones[0]"),
])
def test_vit_optim_fields_are_validated_with_one_line(optim, backbone, message):
    import yaml

    from ssl_bench.errors import UserError

    with pytest.raises(UserError) as info:
        parse_suite(yaml.safe_load(SUITE.format(optim=optim, backbone=backbone)))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_vit_fields_keep_old_run_ids_at_their_defaults():
    import yaml

    from ssl_bench.config.run_spec import expand

    suite = parse_suite(yaml.safe_load(SUITE.format(optim="base_lr: 0.5", backbone=R18)))
    config = expand(suite, amp="off")[0].config()
    assert "clip_grad" not in config["optim"] and "weight_decay_end" not in config["optim"]
    clipped = parse_suite(yaml.safe_load(SUITE.format(optim="base_lr: 0.5, clip_grad: 3.0", backbone=R18)))
    assert expand(clipped, amp="off")[0].config()["optim"]["clip_grad"] == 3.0


def test_a_methods_own_partition_keeps_its_keys_and_is_split_by_the_same_rule():
    """The shape a method hook would hand over (a Barlow-Twins-like bias lr, a SimSiam-like fixed-lr head)."""
    from ssl_bench.engine.optim import set_hyperparameters

    model = _Toy(_vit())
    head, rest = list(model.head.parameters()), [p for n, p in model.named_parameters() if not n.startswith("head.")]
    groups = param_groups(model, 0.1, base_groups=[{"params": rest}, {"params": head, "lr_scale": 0.5,
                                                                      "fixed_lr": True}])
    opt = torch.optim.AdamW(groups, lr=1.0)
    set_hyperparameters(opt, lr=0.01, weight_decay=0.2, peak_lr=0.04)
    names = {id(p): n for n, p in model.named_parameters()}
    for g in opt.param_groups:
        in_head = {names[id(p)].startswith("head.") for p in g["params"]}
        assert len(in_head) == 1  # a partition is never merged with another
        assert g["lr"] == pytest.approx(0.04 * 0.5 if in_head == {True} else 0.01)
        decayed = {names[id(p)] not in _wd_zero_by_hand(model) for p in g["params"]}
        assert decayed == {g["weight_decay"] == pytest.approx(0.2)}  # the rule, inside each partition
