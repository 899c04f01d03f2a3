"""The ImageNet path of the papers on a tiny ImageNet-layout folder of non-square JPEGs [DM dataset.py]:
whole images decoded (no square cut), random-resized crops inside each image, the bicubic 0.875 centre-crop
test view, pretraining on train + the val hold-out, SimCLR-style subset files naming held-out images, and
the linear_sgd refit / lr scaling conventions."""
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ssl_bench.data.augment import MultiViewAugment, ViewRecipe, apply_view, eval_transform, sample_view_params
from ssl_bench.create import create_dataset
from ssl_bench.data.loader import iterate_batches
from ssl_bench.data.types import FolderBatch
from ssl_bench.evalkit.finetune import batch_scaled_lrs
from ssl_bench.evalkit.label_subsets import subset_file_split, subset_from_file
from ssl_bench.registry import EVALUATIONS

from test_linear_sgd import tiny_context  # noqa: E402  (tests/ is on sys.path under pytest)

WNIDS = ("n01440764", "n01443537", "n01484850")
SIZES = ((48, 24), (20, 36), (40, 30), (18, 18), (44, 22), (26, 40))  # (width, height): mostly non-square
CROP_ONLY = dict(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0, flip_p=0.0)
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def banded(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A noisy image whose left quarter is red and right quarter blue: the periphery a square cut loses."""
    img = rng.integers(60, 196, (h, w, 3), dtype=np.uint8)
    img[:, : w // 4] = (255, 0, 0)
    img[:, w - w // 4:] = (0, 0, 255)
    return img


def write_imagenet(root, per_class: int = 8, val_per_class: int = 2) -> None:
    """train/<wnid>/<wnid>_<i>.JPEG and val/<wnid>/ILSVRC2012_val_<k>.JPEG, as ImageNet's folders."""
    rng = np.random.default_rng(0)
    k = 0
    for c, wnid in enumerate(WNIDS):
        for split, count in (("train", per_class), ("val", val_per_class)):
            (root / split / wnid).mkdir(parents=True)
            for i in range(count):
                w, h = SIZES[(i + c) % len(SIZES)]
                name = f"{wnid}_{i}.JPEG" if split == "train" else f"ILSVRC2012_val_{k:08d}.JPEG"
                k += split == "val"
                Image.fromarray(banded(w, h, rng)).save(root / split / wnid / name, quality=95)


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    write_imagenet(root)
    return root


def load(root, **params):
    return create_dataset("image_folder", str(root), path=str(root), **{"load_size": 64, "val_fraction": 0.25, **params})


def one_batch(data, n=None):
    return next(iterate_batches(data, n or len(data), shuffle=False, generator=None, drop_last=False, device="cpu"))


def test_images_are_decoded_whole_with_their_aspect_ratio(imagenet):
    b = load(imagenet)
    assert b.native_size == 64 and load(imagenet, load_size=100000).native_size == 224  # views: 224 [DM]
    batch, _ = one_batch(b.train)
    assert isinstance(batch, FolderBatch) and batch.eval_crop == 0.875
    for img, (h, w), path in zip(batch.pixels, batch.sizes.tolist(), b.train.paths):
        ref = np.asarray(Image.open(path).convert("RGB"))  # small images are never enlarged or cut
        assert (h, w) == ref.shape[:2]
        assert torch.equal(img[:, :h, :w], torch.from_numpy(ref.copy()).permute(2, 0, 1))
        assert img[:, h:].eq(0).all() and img[:, :, w:].eq(0).all()


def test_large_images_are_reduced_not_cropped(tmp_path):
    write_imagenet(tmp_path, per_class=2, val_per_class=1)
    b = create_dataset("image_folder", str(tmp_path), path=str(tmp_path), load_size=12)
    batch, _ = one_batch(b.train)
    for (h, w), path in zip(batch.sizes.tolist(), b.train.paths):
        W, H = Image.open(path).size
        scale = min(1.0, 12 / min(W, H), 24 / max(W, H))  # shorter side <= 12, longer <= 24
        assert (h, w) == (round(H * scale), round(W * scale))


def test_random_resized_crops_come_from_the_whole_image(imagenet):
    b = load(imagenet)
    batch, _ = one_batch(b.train)
    recipe = ViewRecipe(**CROP_ONLY, interpolation="bicubic")
    gen = torch.Generator().manual_seed(0)
    p = sample_view_params(recipe, len(batch), batch.sizes[:, 0], batch.sizes[:, 1], gen, "cpu")
    h_img, w_img = batch.sizes[:, 0], batch.sizes[:, 1]
    assert (p.top + p.height <= h_img).all() and (p.left + p.width <= w_img).all()  # inside each image
    out = apply_view(batch.pixels, p, recipe, 16, MEAN, STD)
    for i in range(len(batch)):  # independent check: torch's bicubic resize of the cropped window
        t, l, hh, ww = (int(v[i]) for v in (p.top, p.left, p.height, p.width))
        window = batch.pixels[i:i + 1, :, t:t + hh, l:l + ww].float() / 255
        ref = F.interpolate(window, size=(16, 16), mode="bicubic", align_corners=False).clamp(0, 1)
        ref = (ref - 0.5) / 0.25
        assert torch.allclose(out[i], ref[0], atol=1e-4), i
    # over many draws some crops reach the red / blue bands that a centre square would have cut off
    aug = MultiViewAugment([recipe], 8, MEAN, STD)
    wide = [i for i, (h, w) in enumerate(batch.sizes.tolist()) if w >= 2 * h]
    seen_red = seen_blue = 0
    for seed in range(20):
        x = aug(batch, torch.Generator().manual_seed(seed))[0][wide] * 0.25 + 0.5
        seen_red += int(((x[:, 0] > 0.9) & (x[:, 2] < 0.1)).any())
        seen_blue += int(((x[:, 2] > 0.9) & (x[:, 0] < 0.1)).any())
    assert seen_red > 0 and seen_blue > 0


def test_test_view_is_a_bicubic_centre_crop_of_0875(imagenet):
    b = load(imagenet)
    batch, _ = one_batch(b.test)
    out = eval_transform(batch, 12, MEAN, STD)
    for i, path in enumerate(b.test.paths):
        img = Image.open(path).convert("RGB")
        W, H = img.size
        side = int(0.875 * min(W, H))  # [DM dataset.py] _decode_and_center_crop
        top, left = (H - side + 1) // 2, (W - side + 1) // 2
        crop = torch.from_numpy(np.array(img.crop((left, top, left + side, top + side)))).permute(2, 0, 1)
        ref = F.interpolate(crop[None].float() / 255, size=(12, 12), mode="bicubic", align_corners=False)
        assert torch.allclose(out[i], ((ref.clamp(0, 1) - 0.5) / 0.25)[0], atol=1e-4), path


def test_test_view_at_its_own_size_is_the_exact_centre_crop(tmp_path):
    # 16 px shorter side, crop 0.875 -> 14 px resized to 14: the pixels themselves (224 of 256 at full size)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pixels = np.random.default_rng(1).integers(0, 256, (16, 22, 3), dtype=np.uint8)
    for c in "ab":
        Image.fromarray(pixels).save(tmp_path / c / "x.png")
        Image.fromarray(pixels).save(tmp_path / c / "y.png")
    b = create_dataset("image_folder", str(tmp_path), path=str(tmp_path), load_size=16, val_fraction=0.5,
                     test_fraction=0.5)
    out = eval_transform(one_batch(b.test)[0], 14, (0.0,) * 3, (1.0,) * 3)
    ref = torch.from_numpy(pixels[1:15, 4:18]).permute(2, 0, 1).float() / 255  # offsets (16-14+1)//2, (22-14+1)//2
    assert torch.allclose(out[0], ref, atol=1e-6)


def test_pretraining_sees_train_and_the_val_holdout_only(imagenet):
    b = load(imagenet)
    pre = b.pretrain_images
    assert sorted(pre.paths) == sorted(b.train.paths + b.val.paths) and len(b.val) > 0
    assert not set(pre.paths) & set(b.test.paths) and all("/val/" in p for p in b.test.paths)
    assert b.split_info["pretrain"]["size"] == len(pre)
    assert load(imagenet, pretrain_on_val=False).pretrain_images is not None
    assert load(imagenet, pretrain_on_val=False).pretrain_images.paths == b.train.paths
    digits = create_dataset("digits")
    assert digits.pretrain_images is digits.train  # in-memory datasets: unchanged


def test_official_subset_file_may_name_images_the_holdout_took(imagenet, tmp_path):
    b = load(imagenet)
    held = [p.rsplit("/", 1)[-1] for p in b.val.paths]
    kept = [p.rsplit("/", 1)[-1] for p in b.train.paths[::5]]
    listing = tmp_path / "1percent.txt"  # SimCLR's format: bare file names of ImageNet train images
    listing.write_text("\n".join(held[:2] + kept) + "\n")
    pool, idx, val = subset_file_split(str(listing), b)
    named = {pool.paths[i].rsplit("/", 1)[-1] for i in idx}
    assert named == set(held[:2] + kept)
    assert len(val) == len(b.val) - 2 and not {p.rsplit("/", 1)[-1] for p in val.paths} & named
    ctx = tiny_context(tmp_path / "ctx")
    folder_ctx = replace(ctx, get_dataset=lambda n: b if n == "image_folder" else ctx.get_dataset(n),
                         out_dir=str(tmp_path / "run"))
    rows = EVALUATIONS.get("semi_supervised")(dataset="image_folder", subset_file=str(listing), lrs=[0.05],
                                              epochs=[1], batch_size=4).evaluate(folder_ctx)
    e = rows[0]["extra"]
    assert e["n_labelled"] == len(named) and e["n_val"] == len(b.val) - 2
    assert rows[0]["label_fraction"] == 0.01  # nominal: SimCLR's file name, never the realised share below
    assert e["labelled_share"] == pytest.approx(len(named) / (len(b.train) + len(b.val)))
    saved = subset_from_file(e["subset_file"], pool.paths, len(pool))  # the audit file names the same images
    assert torch.equal(saved, idx)


def test_lr_batch_scaling_and_refit_on_train_plus_val(tmp_path, monkeypatch):
    assert batch_scaled_lrs([0.2, 0.1], 1024, True) == [0.8, 0.4]  # [DM] base_learning_rate * batch / 256
    assert batch_scaled_lrs([0.2, 0.1], 1024, False) == [0.2, 0.1]
    import ssl_bench.evaluations.linear_sgd as module

    calls = []
    real = module.train_classifier

    def spy(model, data, prep, **kw):
        calls.append((len(data), kw["lrs"]))
        return real(model, data, prep, **kw)

    monkeypatch.setattr(module, "train_classifier", spy)
    ctx = tiny_context(tmp_path)
    b = ctx.pretrain
    rows = EVALUATIONS.get("linear_sgd")(lrs=[0.4, 0.1], epochs=1, batch_size=64, refit=True,
                                         lr_batch_scaling=True).evaluate(ctx)
    e = rows[0]["extra"]
    assert calls[0] == (len(b.train), [0.1, 0.025])  # both heads, scaled by 64 / 256
    assert calls[1] == (len(b.train) + len(b.val), [e["lr_used"]])  # the chosen one, refit on train + val
    assert e["lr_used"] == e["lr"] * 64 / 256 and e["refit_on_train_val"] is True
    assert e["n_train"] == len(b.train) + len(b.val)


def test_imagenet_layout_suite_end_to_end(imagenet, tmp_path):
    import json

    from ssl_bench.cli.main import main

    b = load(imagenet, load_size=16)
    listing = tmp_path / "1percent.txt"
    listing.write_text("\n".join(p.rsplit("/", 1)[-1] for p in (b.val.paths[:1] + b.train.paths[::4])) + "\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""
name: imagenet-layout
datasets: [{{name: image_folder, label: imagenet, image_size: 16,
            params: {{path: '{imagenet}', load_size: 16, val_fraction: 0.25}}}}]
backbones: [{{name: resnet18, kwargs: {{channels: [8, 8, 8, 8], stem_width: 8}}}}]
methods: [{{name: simclr, params: {{proj_hidden_dim: 16, proj_dim: 8}}}}]
pretrain: {{epochs: 1, batch_size: 8, amp: off, num_workers: 0}}
evaluations:
  - {{name: knn, params: {{k: 3}}}}
  - {{name: linear_sgd, params: {{lrs: [0.1, 0.05], epochs: 1, batch_size: 8, refit: true, lr_batch_scaling: true}}}}
  - {{name: semi_supervised, params: {{subset_file: '{listing}', lrs: [0.05], epochs: [1], batch_size: 4}}}}
output: {{table: false, report: false}}
""")
    out = tmp_path / "out"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["protocol"] for r in recs} >= {"knn", "linear_sgd", "semi_supervised"}
    assert all(r["status"] == "ok" for r in recs)
    split = recs[0]["split_info"]
    assert split["pretrain"]["size"] == len(b.train) + len(b.val)  # pretraining saw the val hold-out too
    sgd = next(r for r in recs if r["protocol"] == "linear_sgd")["extra"]
    assert sgd["refit_on_train_val"] and sgd["lr_used"] == sgd["lr"] * 8 / 256
    semi = next(r for r in recs if r["protocol"] == "semi_supervised")
    assert semi["extra"]["n_val"] == len(b.val) - 1  # the listed held-out image chooses no hyperparameter
    # the folder is recorded under its label, with what it held; every row carries its evaluation recipe
    assert {(r["pretrain_dataset"], r["eval_dataset"]) for r in recs} == {("imagenet", "imagenet")}
    manifest = json.loads(next((out / "runs").glob("*/run.json")).read_text())["split_info"]["manifest"]
    assert manifest["images"] == {"train": len(b.train) + len(b.val), "val": len(b.test)}
    assert {r["dataset_manifest"] for r in recs} == {manifest["id"]} and manifest["classes"] == b.num_classes
    assert semi["label_fraction"] == 0.01 and semi["recipe"]["subset"].startswith("file sha256 ")
    assert all(r["recipe_id"] and len(r["recipe_id"]) == 8 for r in recs)
    assert sgd["refit_on_train_val"] and next(r for r in recs if r["protocol"] == "linear_sgd")["recipe"][
        "lrs_per_256"] == [0.1, 0.05]
