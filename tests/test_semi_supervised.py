"""Semi-supervised fine-tuning: a trained copy (ctx.encoder untouched), subsets saved, subset files, baseline."""
import numpy as np
import pytest
import torch
from PIL import Image

from ssl_bench.create import create_dataset
from ssl_bench.errors import UserError
from ssl_bench.evalkit.finetune import InputPrep, finetune_grid
from ssl_bench.evalkit.label_subsets import balanced_subset, subset_from_file
from ssl_bench.registry import EVALUATIONS

from test_linear_sgd import tiny_context  # noqa: E402  (tests/ is on sys.path under pytest)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return tiny_context(tmp_path_factory.mktemp("semi"))


def test_finetuning_changes_the_copy_not_ctx_encoder(ctx):
    before = {k: v.clone() for k, v in ctx.encoder.state_dict().items()}
    train = ctx.pretrain.train.subset(balanced_subset(ctx.pretrain.train.labels, 0.05, seed=0))
    model, chosen, curve = finetune_grid(ctx, ctx.pretrain, train, {"lr": [0.05], "epochs": [2]},
                                         prep=InputPrep.from_context(ctx, (0.5, 1.0)), from_scratch=False,
                                         batch_size=32, select_by="top1", where="test")
    assert chosen == {"lr": 0.05, "epochs": 2} and len(curve) == 1
    for k, v in ctx.encoder.state_dict().items():
        assert torch.equal(before[k], v), k
    tuned = model.encoder.state_dict()
    changed = [k for k in before if not torch.equal(before[k], tuned[k])]
    assert any(k.endswith("weight") and "bn" not in k for k in changed)  # conv weights trained
    assert any(k.endswith("running_mean") for k in changed)  # BN statistics of the copy updated
    assert not ctx.encoder.training


def test_semi_supervised_rows_and_saved_subsets(ctx):
    rows = EVALUATIONS.get("semi_supervised")(fractions=[0.02, 0.1], lrs=[0.05], epochs=[1]).evaluate(ctx)
    assert [(r["label_fraction"], r["metric"]) for r in rows] == [(0.02, "top1"), (0.02, "top5"), (0.1, "top1"),
                                                                  (0.1, "top5")]
    train = ctx.pretrain.train
    for r in rows[::2]:
        e = r["extra"]
        saved = subset_from_file(e["subset_file"], None, len(train))  # audit: the file is the subset used
        assert torch.equal(saved, balanced_subset(train.labels, r["label_fraction"], seed=ctx.seed))
        assert e["n_labelled"] == len(saved) and e["per_class_min"] == e["per_class_max"] >= 1
        assert e["from_scratch"] is False and 0 <= r["value"] <= 100


def test_supervised_baseline_starts_from_scratch(ctx):
    calls = []

    def fresh():
        calls.append(1)
        return ctx.new_encoder()

    from dataclasses import replace

    sup = replace(ctx, method_needs_labels=True, new_encoder=fresh)
    rows = EVALUATIONS.get("semi_supervised")(fractions=[0.01], lrs=[0.05], epochs=[1]).evaluate(sup)
    assert calls == [1] and rows[0]["extra"]["from_scratch"] is True


def _image_folder(root, classes=3, per_class=10):
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"img_{c}_{i}.png")
    return create_dataset("image_folder", path=str(root), load_size=8)


def test_subset_file_on_image_folder(ctx, tmp_path):
    bundle = _image_folder(tmp_path / "imgs")
    from dataclasses import replace

    folder_ctx = replace(ctx, get_dataset=lambda n: bundle if n == "image_folder" else ctx.get_dataset(n),
                         out_dir=str(tmp_path / "run"))
    names = [p.rsplit("/", 1)[-1] for p in bundle.train.paths[::7]]
    listing = tmp_path / "1percent.txt"
    listing.write_text("\n".join(names) + "\n")
    ev = EVALUATIONS.get("semi_supervised")(dataset="image_folder", subset_file=str(listing), lrs=[0.05],
                                            epochs=[1])
    rows = ev.evaluate(folder_ctx)
    assert [r["metric"] for r in rows] == ["top1"]  # 3 classes: no top-5
    e = rows[0]["extra"]
    # the row keys on the nominal fraction the file stands for (SimCLR's name); the realised share is of the whole
    # train listing: train + the val hold-out carved from it
    assert rows[0]["label_fraction"] == 0.01
    assert e["labelled_share"] == pytest.approx(len(names) / (len(bundle.train) + len(bundle.val)))
    assert e["n_labelled"] == len(names)
    assert e["channel_adaptation"] == "luminance to 1 channel"
    saved = subset_from_file(e["subset_file"], bundle.train.paths, len(bundle.train))
    assert [bundle.train.paths[i].rsplit("/", 1)[-1] for i in saved] == sorted(names)
    listing.write_text("img_0_0.png\nmissing_a.png\nmissing_b.png\n")
    with pytest.raises(UserError, match=r"2 of 3 entries are not images of the dataset \(lines 2, 3\)") as err:
        ev.evaluate(folder_ctx)
    assert "missing_a" not in str(err.value)  # named by line, never by content (#26 item 6)


@pytest.mark.parametrize("params,field", [({"fractions": [0]}, "fractions"), ({"fractions": [1.5]}, "fractions"),
                                          ({"fractions": []}, "fractions"), ({"epochs": [2.5]}, "epochs"),
                                          ({"subset_seed": -1}, "subset_seed")])
def test_bad_params_are_user_errors(params, field):
    with pytest.raises(UserError, match=f"semi_supervised: params.{field}"):
        EVALUATIONS.get("semi_supervised")(**params)
