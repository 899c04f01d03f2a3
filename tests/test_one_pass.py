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


def _store_worker(rank: int, world: int, tmp: str) -> None:
    import torch.distributed as tdist

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world)
    torch.save(_extract_digits(), f"{tmp}/{rank}.pt")
    tdist.destroy_process_group()


def _extract_digits() -> dict:
    from ssl_bench.backbones import create_backbone
    from ssl_bench.evalkit.feature_store import extract_kinds
    from ssl_bench.evalkit.features import freeze

    bundle = create_dataset("digits")
    torch.manual_seed(0)
    enc = freeze(create_backbone("vit_tiny_patch16_224", in_chans=1, image_size=8, patch_size=4, embed_dim=12,
                                 depth=1, num_heads=3))
    data = bundle.test.subset(torch.arange(101))  # not a multiple of the world size: the last shard is padded
    got, y = extract_kinds(enc, data, ("pooled", "tokens"), image_size=8, in_chans=1, mean=bundle.mean,
                           std=bundle.std, device=torch.device("cpu"), batch_size=16)
    return {**got, "labels": y}


@pytest.mark.slow  # two spawned processes: ~90 s on the shared CPU
def test_two_ranks_gather_pooled_features_and_tokens_in_dataset_order(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_store_worker, args=(2, str(tmp_path)), nprocs=2)
    one = _extract_digits()
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt")
        assert got["tokens"].dtype == torch.float16 and got["tokens"].shape == one["tokens"].shape
        assert torch.equal(got["labels"], one["labels"])
        torch.testing.assert_close(got["pooled"], one["pooled"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got["tokens"], one["tokens"], rtol=1e-3, atol=1e-3)
