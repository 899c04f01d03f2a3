"""BYOL Table 3's transfer datasets on tiny fake layouts built here: SUN397 (first official partition), Stanford
Cars (torchvision's layout), Birdsnap (published test list), Caltech-101 (Kornblith: 30 train images per class)
and VOC2007 with "difficult" objects ignored by the 11-point mAP, as the devkit does."""
import numpy as np
import pytest
import torch
from PIL import Image

from ssl_bench.create import create_dataset
from ssl_bench.data.datasets_transfer import voc_labels
from ssl_bench.errors import DatasetUnavailableError
from ssl_bench.metrics import map11


def jpg(path, seed=0, size=(6, 5)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def write_sun397(root):
    base = root / "SUN397"
    classes = ["/a/abbey", "/b/bakery/shop", "/c/cliff"]  # SUN397 has two-level names too
    (base / "Partitions").mkdir(parents=True)
    (base / "ClassName.txt").write_text("\n".join(classes) + "\n")
    train, test = [], []
    for c, cls in enumerate(classes):
        for i in range(4):
            name = f"{cls}/sun_{c}{i}.jpg"
            jpg(base / name.lstrip("/"), seed=10 * c + i)
            (train if i < 2 else test).append(name)
    for i in range(2):  # an image in no partition of the first split: neither train nor test
        jpg(base / "a" / "abbey" / f"sun_extra{i}.jpg")
    (base / "Partitions" / "Training_01.txt").write_text("\n".join(train) + "\n")
    (base / "Partitions" / "Testing_01.txt").write_text("\n".join(test) + "\n")
    return classes, train, test


def test_sun397_first_partition(tmp_path):
    classes, train, test = write_sun397(tmp_path)
    b = create_dataset("sun397", str(tmp_path), val_fraction=0.34, load_size=8)
    assert b.class_names == [c.lstrip("/") for c in classes] and b.metric == "top1"
    assert sorted(b.test.paths) == sorted(str(tmp_path / "SUN397" / n.lstrip("/")) for n in test)
    assert sorted(b.train.paths + b.val.paths) == sorted(str(tmp_path / "SUN397" / n.lstrip("/")) for n in train)
    for p, y in zip(b.test.paths, b.test.labels.tolist()):
        assert p.endswith(f"sun_{y}{p[-5]}.jpg")  # the class index is in the file name
    assert b.test.eval_crop == 1.0  # transfer test views: the whole shorter side [Kornblith]


def test_sun397_download_path_fetches_images_and_partitions(tmp_path, monkeypatch):
    import torchvision.datasets as tvd
    import torchvision.datasets.utils as tvu

    calls = []

    class FakeSUN397:
        def __init__(self, root, download=False):
            calls.append(("images", download))
            write_sun397(tmp_path)

    monkeypatch.setattr(tvd, "SUN397", FakeSUN397)
    monkeypatch.setattr(tvu, "download_and_extract_archive",
                        lambda url, download_root: calls.append(("partitions", url, download_root)))
    b = create_dataset("sun397", str(tmp_path), download=True, load_size=8)
    assert calls[0] == ("images", True) and calls[1][0] == "partitions" and calls[1][1].endswith("Partitions.zip")
    assert calls[1][2] == str(tmp_path / "SUN397") and len(b.test) == 6


def test_stanford_cars_official_split(tmp_path):
    sio = pytest.importorskip("scipy.io")
    base = tmp_path / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    names = np.array(["AM General Hummer SUV 2000", "Acura RL Sedan 2012"], dtype=object)
    sio.savemat(base / "devkit" / "cars_meta.mat", {"class_names": names.reshape(1, -1)})

    def annos(path, folder, classes):
        rec = np.zeros((1, len(classes)), dtype=[("fname", "O"), ("class", "O")])
        for i, c in enumerate(classes):
            rec[0, i] = (f"{i:05d}.jpg", np.uint8(c))
            jpg(base / folder / f"{i:05d}.jpg", seed=i)
        sio.savemat(path, {"annotations": rec})

    annos(base / "devkit" / "cars_train_annos.mat", "cars_train", [1, 2, 1, 2, 1, 2])
    annos(base / "cars_test_annos_withlabels.mat", "cars_test", [2, 1, 2])
    b = create_dataset("stanford_cars", str(tmp_path), val_fraction=0.34, load_size=8)
    assert b.class_names == list(names) and len(b.train) + len(b.val) == 6
    assert b.test.labels.tolist() == [1, 0, 1] and all("/cars_test/" in p for p in b.test.paths)
    with pytest.raises(DatasetUnavailableError, match="stanford_cars"):
        create_dataset("stanford_cars", str(tmp_path / "none"), download=True)  # the original site is gone


def test_birdsnap_published_test_list(tmp_path):
    base = tmp_path / "birdsnap"
    species = ["Acadian_Flycatcher", "Zone-tailed_Hawk"]
    for s, sp in enumerate(species):
        for i in range(5):
            jpg(base / "images" / sp / f"{i}.jpg", seed=s * 5 + i)
    listed = ["Acadian_Flycatcher/0.jpg", "Zone-tailed_Hawk/3.jpg", "Zone-tailed_Hawk/9.jpg"]  # 9: a dead URL
    (base / "test_images.txt").write_text("path\n" + "\n".join(listed) + "\n")
    b = create_dataset("birdsnap", str(tmp_path), val_fraction=0.25, load_size=8)
    assert b.class_names == species
    assert sorted(p.split("images/")[1] for p in b.test.paths) == listed[:2] and b.test.labels.tolist() == [0, 1]
    assert len(b.train) + len(b.val) == 8 and not set(b.train.paths) & set(b.test.paths)
    with pytest.raises(DatasetUnavailableError, match="get_birdsnap.py"):
        create_dataset("birdsnap", str(tmp_path / "none"), download=True)


def test_caltech101_thirty_training_images_per_class(tmp_path):
    base = tmp_path / "caltech101" / "101_ObjectCategories"
    counts = {"BACKGROUND_Google": 34, "Faces_easy": 31, "accordion": 40}
    for c, (cls, n) in enumerate(counts.items()):
        for i in range(n):
            jpg(base / cls / f"image_{i + 1:04d}.jpg", seed=100 * c + i, size=(4, 4))
    b = create_dataset("caltech101", str(tmp_path), val_fraction=0.1, load_size=8)
    assert b.class_names == list(counts) and b.metric == "mean_per_class"  # all 102 folders, background too
    train_val = torch.cat([b.train.labels, b.val.labels])
    assert torch.bincount(train_val).tolist() == [30, 30, 30]  # [Kornblith]: 30 per class for training
    assert torch.bincount(b.test.labels).tolist() == [n - 30 for n in counts.values()]
    again = create_dataset("caltech101", str(tmp_path), val_fraction=0.1, load_size=8, split_seed=0)
    other = create_dataset("caltech101", str(tmp_path), val_fraction=0.1, load_size=8, split_seed=1)
    assert again.test.paths == b.test.paths and other.test.paths != b.test.paths  # seeded draw


def devkit_ap(scores, gt):
    """VOCevalcls for one class, written from the devkit: gt 1 present, -1 absent, 0 difficult."""
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(gt[order] > 0)
    fp = np.cumsum(gt[order] < 0)
    rec = tp / max((gt > 0).sum(), 1)
    with np.errstate(invalid="ignore"):
        prec = tp / (fp + tp)
    ap = 0.0
    for t in np.arange(0, 1.1, 0.1):
        ok = rec >= t - 1e-12
        p = np.nanmax(prec[ok]) if ok.any() and not np.isnan(prec[ok]).all() else 0.0
        ap += p / 11
    return ap


def test_voc_difficult_objects_are_ignored_like_the_devkit(tmp_path):
    objs = [[("dog", 0)], [("dog", 1)], [("dog", 1), ("dog", 0)], [("cat", 0), ("dog", 1)], [("cat", 1)], []]
    files = []
    for k, objects in enumerate(objs):
        xml = "".join(f"<object><name>{n}</name><difficult>{d}</difficult></object>" for n, d in objects)
        (tmp_path / f"{k}.xml").write_text(f"<annotation>{xml}</annotation>")
        files.append(str(tmp_path / f"{k}.xml"))
    y = voc_labels(files)
    dog, cat = 11, 7
    assert y[:, dog].tolist() == [1, -1, 1, -1, 0, 0] and y[:, cat].tolist() == [0, 0, 0, 1, -1, 0]
    rng = np.random.default_rng(0)
    scores = torch.from_numpy(rng.normal(size=(6, 20)))
    scores[1, dog] = scores[3, dog] = 10.0  # difficult images ranked first: ignored, not false positives
    ours = map11(scores, y)
    devkit_gt = torch.where(y > 0, 1.0, torch.where(y < 0, 0.0, -1.0)).numpy()  # the devkit's encoding
    keep = [c for c in range(20) if (y[:, c] > 0).any()]
    ref = 100 * np.mean([devkit_ap(scores[:, c].numpy(), devkit_gt[:, c]) for c in keep])
    assert ours == pytest.approx(ref, abs=1e-9)
    assert map11(scores, y.clamp(min=0)) < ours  # counting them as negatives would cost precision
