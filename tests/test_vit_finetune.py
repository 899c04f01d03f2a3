"""The `finetune` evaluation (MAE's fine-tuning protocol): per-layer lr factors and weight-decay exclusions of its
AdamW groups against MAE's formula written here, and a tiny ViT fine-tuned on digits improving over its start."""
from __future__ import annotations

import copy

import pytest
import torch

from masked_image_helpers import tiny_vit
from ssl_bench.create import create_dataset
from ssl_bench.errors import UserError
from ssl_bench.evaluation import EvalContext
from ssl_bench.evalkit.finetune import Classifier, InputPrep, predict
from ssl_bench.evalkit.vit_finetune import finetune_optimizer, has_vit_blocks
from ssl_bench.metrics import classification_metrics
from ssl_bench.registry import EVALUATIONS, load_plugins

DEPTH = 3


def mae_layer_id(name: str, num_layers: int) -> int:
    """[MAE util/lr_decay.py get_layer_id_for_vit], on the names inside the classifier: `encoder.` + timm's."""
    inner = name.removeprefix("encoder.")
    if not name.startswith("encoder."):
        return num_layers + 1  # the new head
    if inner in ("cls_token", "pos_embed") or inner.startswith("patch_embed"):
        return 0
    if inner.startswith("blocks."):
        return int(inner.split(".")[1]) + 1
    return num_layers + 1


@pytest.mark.parametrize("decay", [0.75, 0.65])
def test_layer_lr_factors_and_decay_exclusions_follow_mae(decay):
    torch.manual_seed(0)
    model = Classifier(tiny_vit(depth=DEPTH), 64, 10)
    lr, wd = 1e-3, 0.05
    opt = finetune_optimizer(model, lr, wd, decay)
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert set(group_of) == {id(p) for p in names.values()}  # every parameter trained, once
    for name, p in names.items():
        g = group_of[id(p)]
        expected = float(decay) ** (DEPTH + 1 - mae_layer_id(name, DEPTH))  # float64 in Python
        assert g["lr"] == pytest.approx(lr * expected, rel=1e-12), name
        # [MAE lr_decay.py]: no decay if p.ndim == 1 or n in model.no_weight_decay() (pos_embed, cls_token)
        no_decay = p.ndim == 1 or name.removeprefix("encoder.") in ("pos_embed", "cls_token")
        assert g["weight_decay"] == (0.0 if no_decay else wd), name
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.999)
    assert has_vit_blocks(model) and not has_vit_blocks(torch.nn.Conv2d(1, 4, 3))


def vit_context(tmp_path) -> EvalContext:
    load_plugins()
    bundle = create_dataset("digits")

    def new_encoder():
        torch.manual_seed(0)
        return tiny_vit(depth=2, embed_dim=32, patch_size=4)

    enc = new_encoder().eval().requires_grad_(False)
    return EvalContext(encoder=enc, feature_dim=enc.num_features, method_needs_labels=False, seed=0,
                       device=torch.device("cpu"), pretrain=bundle, image_size=16, in_chans=1, mean=bundle.mean,
                       std=bundle.std, out_dir=str(tmp_path), get_dataset=lambda n: bundle, features=None,
                       new_encoder=new_encoder)


def test_a_tiny_vit_fine_tuned_on_digits_improves_over_its_start(tmp_path):
    ctx = vit_context(tmp_path)
    before = copy.deepcopy(ctx.encoder.state_dict())
    params = {"lrs": [3e-2], "epochs": 10, "warmup_epochs": 1, "batch_size": 64, "crop_scale": [0.5, 1.0],
              "flip_p": 0.0}
    ev = EVALUATIONS.get("finetune")(**params)
    # the start: the same encoder and head initialisation (seed ctx.seed + 0), before any step
    start_model = Classifier(copy.deepcopy(ctx.encoder), ctx.feature_dim, 10, seed=ctx.seed)
    prep = InputPrep.from_context(ctx, params["crop_scale"], 0.0)
    scores, y = predict(start_model, ctx.pretrain.test, prep, ctx.device)
    start = classification_metrics(scores[0], y, "top1")["top1"]
    rows = ev.evaluate(ctx)
    top1 = next(r["value"] for r in rows if r["metric"] == "top1")
    # 10 classes: chance is 10%; measured 55.7 (start 8.1) with these parameters on 2026-12-03
    assert top1 > start + 20 and top1 > 40, (start, top1)
    assert all(r["protocol"] == "finetune" and not r["uses_frozen_encoder"] for r in rows)
    assert rows[0]["recipe"]["layer_decay"] == 0.75 and rows[0]["extra"]["layer_decay_applied"] == 0.75
    assert set(rows[0]["recipe"]) == set(ev.protocols[0].recipe_fields)
    assert all(torch.equal(before[k], v) for k, v in ctx.encoder.state_dict().items())  # a copy was trained


@pytest.mark.parametrize("params,message", [
    ({"layer_decay": 1.5}, "evaluation finetune: params.layer_decay: bad value 1.5"),
    ({"layer_decay": 0}, "evaluation finetune: params.layer_decay: bad value 0"),
    ({"warmup_epochs": 20, "epochs": 10}, "evaluation finetune: params.warmup_epochs: bad value 20; allowed: an "
                                          "integer in [0, epochs=10]"),
    ({"lrs": []}, "evaluation finetune: params.lrs: bad value []"),
])
def test_bad_parameters_are_one_line_errors_naming_the_field(params, message):
    load_plugins()
    with pytest.raises(UserError) as exc:
        EVALUATIONS.get("finetune")(**params)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)
