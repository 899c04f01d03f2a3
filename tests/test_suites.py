"""Every suite shipped under suites/ validates offline (`ssl-bench validate`), and the reproduction suites say
where their numbers come from."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssl_bench.cli.main import main
from ssl_bench.config.suite import load_suite
from ssl_bench.create import create_dataset

REPO = Path(__file__).resolve().parent.parent
SUITES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "suites").rglob("*.yaml"))


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """A HOME whose ~/data/imagenet is a tiny train/ + val/ folder with subset files (the ImageNet suites' paths),
    run from the repository root."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for wnid in ("n01440764", "n01443537"):
            (tmp_path / "data" / "imagenet" / split / wnid).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(
                tmp_path / "data" / "imagenet" / split / wnid / f"{wnid}_1.JPEG")
    for name in ("1percent.txt", "10percent.txt"):  # SimCLR's subset files, in their format (one name per line)
        (tmp_path / "data" / "imagenet" / name).write_text("n01440764_1.JPEG\nn01443537_1.JPEG\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SSL_BENCH_DATA", str(tmp_path / "empty"))  # nothing cached is needed to validate
    monkeypatch.chdir(REPO)
    return tmp_path


def test_the_reproduction_suites_are_there():
    for name in ("suites/quickstart.yaml", "suites/fashion_mnist.yaml", "suites/cifar10.yaml", "suites/cifar100.yaml",
                 "suites/cifar10_lightly.yaml", "suites/imagenet/byol_300ep.yaml",
                 "suites/imagenet/byol_1000ep.yaml"):
        assert name in SUITES


@pytest.mark.parametrize("suite", SUITES)
def test_suite_validates_offline(suite, offline_home, capsys):
    assert main(["validate", str(REPO / suite)]) == 0, capsys.readouterr().err
    assert f"{Path(suite).name}: ok" in capsys.readouterr().out.replace(str(REPO / Path(suite).parent) + "/", "")


@pytest.mark.parametrize("suite", [s for s in SUITES if Path(s).stem not in ("quickstart", "fashion_mnist", "zoo")])
def test_reproduction_suites_cite_their_published_rows_and_estimate_hardware(suite):
    text = (REPO / suite).read_text()
    assert "Published rows" in text and "Hardware and time" in text
    assert "estimate" in text.lower() or "published" in text.lower()


@pytest.mark.parametrize("epochs,lr,wd,tau", [(300, 0.3, 1e-6, 0.99), (1000, 0.2, 1.5e-6, 0.996)])
def test_imagenet_suites_run_the_deepmind_recipe(epochs, lr, wd, tau, offline_home):
    s = load_suite(REPO / f"suites/imagenet/byol_{epochs}ep.yaml")
    m = s.methods[0]
    assert (m.epochs, m.optim["base_lr"], m.optim["weight_decay"], m.params["tau_base"]) == (epochs, lr, wd, tau)
    assert s.pretrain["batch_size"] == 4096 and s.datasets[0].image_size == 224
    assert s.datasets[0].params["eval_crop"] == 0.875 and s.datasets[0].params["pretrain_on_val"] is True
    assert round(s.datasets[0].params["val_fraction"] * 1281167) == 10000  # [DM] Split.VALID
    evals = {e.name: e.params for e in s.evaluations}
    # the paper's protocol: heads on TRAIN, one chosen on VALID [DM README.md:92-98]; lrs per 256 images
    assert evals["linear_sgd"]["epochs"] == 80 and evals["linear_sgd"]["refit"] is False
    assert s.datasets[0].label == "imagenet" and s.backbones[0].kwargs["zero_init_last"] is False
    assert all(v["crop_sampler"] == "deepmind" for v in m.views)
    semis = [e.params for e in s.evaluations if e.name == "semi_supervised"]
    assert [e["subset_fraction"] for e in semis] == [0.01, 0.1]
    assert evals["linear_sgd"]["lr_batch_scaling"] and all(e["lr_batch_scaling"] for e in semis)
    subsets = [e.params["subset_file"] for e in s.evaluations if e.name == "semi_supervised"]
    assert [Path(f).name for f in subsets] == ["1percent.txt", "10percent.txt"]
    assert len(evals["transfer"]["datasets"]) == 12


JOINT_EMBEDDING = {"byol", "simclr", "moco_v2", "moco_v3", "barlow_twins", "vicreg", "simsiam", "nnclr", "swav", "dino"}


def test_zoo_suite_trains_every_joint_embedding_method_on_digits_with_knn_and_linear(offline_home):
    """suites/zoo.yaml (README "Method zoo"): each of the ten methods once, beside random, on the narrow CPU net."""
    s = load_suite(REPO / "suites/zoo.yaml")
    names = [m.name for m in s.methods]
    assert set(names) - {"random", "supervised"} == JOINT_EMBEDDING and len(names) == len(set(names))
    assert "random" in names and [e.name for e in s.evaluations] == ["knn", "linear"]
    assert [d.name for d in s.datasets] == ["digits"] and s.backbones[0].kwargs["channels"] == [16, 32, 64, 128]
    # tiny data: no method keeps a support set, queue or prototype count sized for ImageNet's 1.28M images
    train = len(create_dataset("digits").split("train"))
    m = {x.name: x.params for x in s.methods}
    assert m["nnclr"]["queue_size"] < train and m["moco_v2"]["queue_size"] < train
    steps = s.methods[names.index("swav")].epochs * (train // s.pretrain["batch_size"])
    assert m["swav"]["freeze_prototypes_niters"] < steps and m["dino"]["warmup_teacher_temp_epochs"] < 12
    assert m["swav"]["local_crops"] == m["dino"]["local_crops"] == 0  # a 96/224 local crop of 16 px is 7 px


def test_cifar_suites_train_the_new_methods_with_their_sources_recipes(offline_home):
    """solo-learn scripts/pretrain/cifar/*.yaml and lightly's cifar10_benchmark.py@42a6a924, converted to this
    suite's conventions (lr per 256 images, freezing in steps, 2 views)."""
    solo = {m.name: m for m in load_suite(REPO / "suites/cifar10.yaml").methods}
    assert JOINT_EMBEDDING <= set(solo) and all(len(m.views) == 2 for m in solo.values())  # num_crops 2
    assert solo["swav"].params["freeze_prototypes_niters"] == 2 * (50000 // 256)  # freeze_prototypes_epochs 2
    assert (solo["nnclr"].params["queue_size"], solo["nnclr"].optim["base_lr"]) == (65536, 0.4)
    assert (solo["dino"].params["out_dim"], solo["dino"].params["momentum_teacher"]) == (4096, 0.9995)
    assert all(solo[n].optim["lars_eta"] == 0.02 for n in ("barlow_twins", "vicreg", "nnclr", "swav", "dino"))
    lightly = {m.name: m for m in load_suite(REPO / "suites/cifar10_lightly.yaml").methods}
    assert JOINT_EMBEDDING - {"vicreg", "moco_v3"} == set(lightly)  # the methods of lightly's CIFAR-10 table
    # BarlowTwinsModel and NNCLRModel train on simclr_transform, as BYOLModel does
    assert lightly["barlow_twins"].views == lightly["nnclr"].views == lightly["byol"].views
    assert lightly["simsiam"].optim["base_lr"] == pytest.approx(0.06 * 256 / 512)  # lr 6e-2, not batch-scaled
    assert lightly["swav"].optim["base_lr"] == pytest.approx(1e-3 * (512 / 128) * 256 / 512)  # Adam 1e-3 x factor
