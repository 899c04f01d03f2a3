"""linear_sgd, and the frozen encoder left untouched (parameters and BN statistics) by linear, linear_sgd and
transfer-linear."""
import copy

import pytest
import torch

from ssl_bench.backbones import create_backbone
from ssl_bench.create import create_dataset
from ssl_bench.errors import UserError
from ssl_bench.evaluation import EvalContext
from ssl_bench.evalkit.features import feature_cache, freeze
from ssl_bench.registry import EVALUATIONS, load_plugins

SIZE = 8


def tiny_context(tmp_path) -> EvalContext:
    load_plugins()
    bundle = create_dataset("digits")

    def new_encoder():
        torch.manual_seed(0)
        return create_backbone("resnet18", in_chans=1, image_size=SIZE, channels=[4, 8, 8, 8], stem_width=4)

    enc = new_encoder()
    enc.train()
    with torch.no_grad():  # non-trivial BN running statistics, so any update would show
        for _ in range(3):
            enc(torch.randn(32, 1, SIZE, SIZE) * 2 + 1)
    enc = freeze(enc)
    get = lambda n: bundle if n == "digits" else create_dataset(n)  # noqa: E731
    feats = feature_cache(enc, get, image_size=SIZE, in_chans=1, mean=bundle.mean, std=bundle.std,
                          device=torch.device("cpu"))
    return EvalContext(encoder=enc, feature_dim=enc.num_features, method_needs_labels=False,
                       seed=0, device=torch.device("cpu"), pretrain=bundle, image_size=SIZE, in_chans=1,
                       mean=bundle.mean, std=bundle.std, out_dir=str(tmp_path), get_dataset=get, features=feats,
                       new_encoder=new_encoder)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return tiny_context(tmp_path_factory.mktemp("ctx"))  # one feature cache for the whole module


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name,params", [
    ("linear", {"num_l2": 2, "max_iter": 30}),
    ("linear_sgd", {"lrs": [0.1], "epochs": 1}),
    ("transfer", {"datasets": ["mnist5k"], "variant": "linear", "num_l2": 2, "max_iter": 30}),
])
def test_frozen_encoder_unchanged(ctx, name, params):
    before = _state(ctx.encoder)
    assert any("running_mean" in k and v.abs().sum() > 0 for k, v in before.items())
    rows = EVALUATIONS.get(name)(**params).evaluate(ctx)
    assert rows and all(0 <= r["value"] <= 100 for r in rows)
    after = ctx.encoder.state_dict()
    assert before.keys() == after.keys()
    for k in before:  # parameters, BN running mean/var and num_batches_tracked
        assert torch.equal(before[k], after[k]), k
    assert not ctx.encoder.training and not any(p.requires_grad for p in ctx.encoder.parameters())


def test_heads_trained_together_equal_heads_trained_alone(ctx):
    """One head per lr on shared features must give what each lr gives on its own (same init and batches)."""
    from ssl_bench.evalkit.finetune import Classifier, InputPrep, train_classifier

    data = ctx.pretrain.train.subset(torch.arange(300))
    prep = InputPrep.from_context(ctx, (0.5, 1.0))
    lrs = [0.3, 0.01]
    joint = Classifier(ctx.encoder, ctx.feature_dim, 10, num_heads=2, frozen=True, seed=1)
    inits = [copy.deepcopy(h.state_dict()) for h in joint.heads]
    train_classifier(joint, data, prep, lrs=lrs, epochs=2, batch_size=128, seed=5, device=ctx.device)
    for k, lr in enumerate(lrs):
        alone = Classifier(ctx.encoder, ctx.feature_dim, 10, num_heads=1, frozen=True, seed=1)
        alone.heads[0].load_state_dict(inits[k])
        train_classifier(alone, data, prep, lrs=[lr], epochs=2, batch_size=128, seed=5, device=ctx.device)
        torch.testing.assert_close(alone.heads[0].weight, joint.heads[k].weight, rtol=1e-4, atol=1e-6)
        assert not torch.equal(alone.heads[0].weight, inits[k]["weight"])


def test_linear_sgd_reports_chosen_lr(ctx):
    rows = EVALUATIONS.get("linear_sgd")(lrs=[0.5, 0.001], epochs=2, crop_scale=[0.5, 1.0]).evaluate(ctx)
    assert {r["metric"] for r in rows} == {"top1", "top5"}
    extra = rows[0]["extra"]
    curve = dict(extra["val_curve"])
    assert extra["lr"] == max(curve, key=lambda lr: (curve[lr], lr == 0.5))
    assert extra["resized"] is False and extra["channel_adaptation"] is None


@pytest.mark.parametrize("params,field", [({"lrs": []}, "lrs"), ({"lrs": [0.1, -1]}, "lrs"),
                                          ({"epochs": 0}, "epochs"), ({"crop_scale": [0.5, 2]}, "crop_scale"),
                                          ({"flip_p": 1.5}, "flip_p")])
def test_bad_params_are_user_errors(params, field):
    load_plugins()
    with pytest.raises(UserError, match=f"linear_sgd: params.{field}"):
        EVALUATIONS.get("linear_sgd")(**params)


def test_training_view_without_crop_or_flip_is_the_test_view():
    """The head must train on the images it is tested on: a full-image crop with no flip resizes with the same
    kernel as the test view (bicubic there against bilinear here moved frozen features 38% on 8 px digits)."""
    from types import SimpleNamespace

    import torch.nn.functional as F

    from ssl_bench.evalkit.finetune import InputPrep
    bundle = create_dataset("digits")  # 8 x 8, resized up to the encoder's 16 px input
    images = bundle.train.images[:64]
    where = SimpleNamespace(image_size=16, in_chans=1, mean=bundle.mean, std=bundle.std)
    prep = InputPrep.from_context(where, crop_scale=(1.0, 1.0), flip_p=0.0)
    trained_on = prep.train_view(images, torch.Generator().manual_seed(0))
    # independent: the test view is a bilinear resize (align_corners=False), then per-channel normalization
    x = F.interpolate(images.float() / 255, size=(16, 16), mode="bilinear", align_corners=False)
    mean, std = torch.tensor(bundle.mean).view(1, -1, 1, 1), torch.tensor(bundle.std).view(1, -1, 1, 1)
    expected = (x - mean) / std
    torch.testing.assert_close(trained_on, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(prep.eval_view(images), expected, atol=1e-5, rtol=0)
