"""One pass: in a suite listing knn, linear, attentive_probe and quality, every image goes through the encoder once
per (split, view), counted at the ViT's patch embedding, and linear_sgd's val/test scores come from the same
cached features as its frozen encoder would give them."""
import pytest
import timm.layers
import torch

from ssl_bench.cli.main import main
from ssl_bench.create import create_dataset

LIDAR_IMAGES, LIDAR_VIEWS = 30, 3
SUITE = f"""
name: one-pass
seeds: [0]
datasets: [{{name: digits, image_size: 16}}]
backbones: [{{name: vit_tiny_patch16_224, label: vit-tiny, kwargs: {{patch_size: 4, embed_dim: 24, depth: 2,
             num_heads: 3}}}}]
methods: [random]
pretrain: {{epochs: 1, batch_size: 64, amp: off}}
evaluations:
  - {{name: knn, params: {{k: 10}}}}
  - {{name: linear, params: {{num_l2: 2, max_iter: 30}}}}
  - {{name: attentive_probe, params: {{lrs: [0.01], epochs: 1}}}}
  - {{name: quality, params: {{lidar_images: {LIDAR_IMAGES}, lidar_views: {LIDAR_VIEWS}}}}}
output: {{table: false, report: false}}
"""


def test_each_image_goes_through_the_encoder_once_per_split_and_view(tmp_path, monkeypatch):
    seen: list[int] = []
    forward = timm.layers.PatchEmbed.forward

    def counting(self, x):
        if not torch.is_grad_enabled():  # evaluation passes (a training step would need gradients)
            seen.append(x.shape[0])
        return forward(self, x)

    monkeypatch.setattr(timm.layers.PatchEmbed, "forward", counting)
    (tmp_path / "suite.yaml").write_text(SUITE)
    assert main(["run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    bundle = create_dataset("digits")
    once = len(bundle.train) + len(bundle.val) + len(bundle.test) + LIDAR_VIEWS * LIDAR_IMAGES
    rows = (tmp_path / "out" / "results.jsonl").read_text()
    assert rows.count('"status": "ok"') >= 9  # knn 2 + linear 2 + attentive 2 + quality 3 metrics
    assert sum(seen) == once, f"{sum(seen)} images through the encoder, {once} expected (one per split and view)"


def test_linear_sgd_runs_the_encoder_only_on_its_training_crops(tmp_path):
    """With val and test already in the run's store, the encoder sees only the augmented training batches."""
    from test_linear_sgd import tiny_context
    from ssl_bench.registry import EVALUATIONS

    ctx = tiny_context(tmp_path)
    ctx.features("digits", "val"), ctx.features("digits", "test")
    seen: list[int] = []
    hook = ctx.encoder.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    epochs, batch = 2, 256
    rows = EVALUATIONS.get("linear_sgd")(lrs=[0.1, 0.02], epochs=epochs, batch_size=batch).evaluate(ctx)
    hook.remove()
    assert sum(seen) == epochs * (len(ctx.pretrain.train) // batch) * batch  # drop_last batches of train only
    assert rows[0]["extra"]["n_test"] == len(ctx.pretrain.test) and 0 <= rows[0]["value"] <= 100


@pytest.mark.parametrize("kind", ["resnet", "vit"])
def test_cached_scores_equal_scores_of_the_images(tmp_path, kind):
    from test_attentive_probe import context
    from ssl_bench.evalkit.finetune import Classifier, InputPrep, predict

    ctx = context(kind, tmp_path)
    model = Classifier(ctx.encoder, ctx.feature_dim, 10, num_heads=2, frozen=True, seed=1)
    direct, y = predict(model, ctx.pretrain.test, InputPrep.from_context(ctx), ctx.device, 64)
    from ssl_bench.evaluations.linear_sgd import cached_scores

    cached, y2 = cached_scores(model, ctx, "digits", "test")
    torch.testing.assert_close(cached, direct, rtol=1e-4, atol=1e-5)
    assert torch.equal(y, y2)
