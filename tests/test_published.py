"""Published reference rows: they load, use the record vocabulary, and equal the papers' numbers restated here."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from ssl_bench.published import check, files, load_published

# The papers' numbers, kept here as data (sources: BYOL Tables 1-3, SimCLR Tables 6-7, MoCo v2/v3, solo-learn's
# and lightly's benchmark pages; see docs/references.md); the published CSVs are checked against them below.
TABLE1 = ("[BYOL Table 1] ResNet-50 linear top-1/top-5: SimCLR 69.3/89.0, MoCo v2 71.1/-, InfoMin 73.0/91.1, "
          "BYOL 74.3/91.6;")
TABLE1_R200 = "BYOL R200 2x 79.6/94.8."
SEMI = "BYOL R50: 1% 53.2 / 78.4, 10% 68.8 / 89.0; supervised baseline 25.4 / 48.4 and 56.4 / 80.4 (top-1 / top-5)."
SIMCLR = "ResNet-50: linear 69.3 / 89.0; 1% labels 48.3 / 75.5; 10% labels 65.6 / 87.8 (top-1 / top-5)."
TRANSFER = {
    ("byol", "transfer_linear"): "BYOL 75.3 91.3 78.4 57.2 62.2 67.8 60.6 82.5 75.5 90.4 94.2 96.1;",
    ("simclr", "transfer_linear"): "SimCLR(repro) 72.8 90.5 74.4 42.4 60.6 49.3 49.8 81.4 75.7 84.6 89.3 92.6;",
    ("supervised", "transfer_linear"): "Supervised-IN 72.3 93.6 78.3 53.7 61.9 66.7 61.0 82.8 74.9 91.5 94.5 94.7.",
    ("byol", "transfer_finetune"): "Fine-tuned: BYOL 88.5 97.8 86.1 76.3 63.7 91.6 88.1 85.4 76.2 91.7 93.8 97.0.",
}
TRANSFER_HEADER = "(Food, C10, C100, Birds, SUN, Cars, Air, VOC, DTD, Pets, Caltech, Flowers)"
SOLO = ("solo-learn 1000 ep linear: BYOL 92.58, SimCLR 90.74, MoCo v2+ 92.94, MoCo v3 93.10 "
        "(CIFAR-100: 70.46, 65.78, 69.89, 68.83).")
LIGHTLY = "lightly kNN bs512/800 ep: BYOL 0.910, SimCLR 0.879, MoCo 0.899."
MOCO = ["ResNet-50 200 ep: 67.5 +- 0.1; 800 ep: 71.1.", "ResNet-50: 100 ep 68.9, 300 ep 72.8, 1000 ep 74.6."]
# Column order of the Table 3 line above, and each dataset's metric [BYOL Sec. 4.2].
TRANSFER_SETS = ["food101", "cifar10", "cifar100", "birdsnap", "sun397", "stanford_cars", "fgvc_aircraft",
                 "voc2007", "dtd", "oxford_iiit_pet", "caltech101", "flowers102"]
OWN_METRIC = {"fgvc_aircraft": "mean_per_class", "oxford_iiit_pet": "mean_per_class",
              "caltech101": "mean_per_class", "flowers102": "mean_per_class", "voc2007": "map11"}
NUM = r"\d+\.\d+"


@pytest.fixture(scope="module")
def pub() -> pd.DataFrame:
    return load_published()


def value(pub, method, protocol, metric, eval_dataset="imagenet", backbone="resnet50", label_fraction=None,
          epochs=None, pretrain_dataset=None, source=None) -> float:
    q = (pub["method"] == method) & (pub["protocol"] == protocol) & (pub["metric"] == metric) & \
        (pub["eval_dataset"] == eval_dataset) & (pub["backbone"] == backbone) & \
        (pub["pretrain_dataset"] == (pretrain_dataset or ("imagenet" if backbone != "resnet18" else eval_dataset)))
    q &= pub["label_fraction"].isna() if label_fraction is None else pub["label_fraction"] == label_fraction
    if epochs is not None:
        q &= pub["epochs"] == epochs
    if source is not None:
        q &= pub["source"].str.contains(source, regex=False)
    hits = pub.loc[q, "value"]
    assert len(hits) == 1, (method, protocol, metric, eval_dataset, len(hits))
    return float(hits.iloc[0])


def test_every_file_loads_with_sources_and_vocabulary(pub):
    assert set(files()) == set(pub["file"]) and len(files()) >= 4
    assert pub["source"].str.len().min() > 5
    assert set(pub["protocol"]) == {"linear", "semi_supervised", "transfer_linear", "transfer_finetune", "knn"}
    assert pub["value"].between(0, 100).all()


def test_table1_linear(pub):
    names = {"SimCLR": "simclr", "MoCo v2": "moco_v2", "InfoMin": "infomin", "BYOL": "byol"}
    pairs = re.findall(rf"(SimCLR|MoCo v2|InfoMin|BYOL) ({NUM})/({NUM}|-)", TABLE1)
    assert len(pairs) == 4
    for name, top1, top5 in pairs:
        assert value(pub, names[name], "linear", "top1", source="BYOL") == float(top1)
        if top5 == "-":
            assert pub[(pub["method"] == names[name]) & (pub["metric"] == "top5")].empty
        else:
            assert value(pub, names[name], "linear", "top5", source="BYOL") == float(top5)
    top1, top5 = re.findall(NUM, TABLE1_R200)
    assert value(pub, "byol", "linear", "top1", backbone="resnet200_2x") == float(top1)
    assert value(pub, "byol", "linear", "top5", backbone="resnet200_2x") == float(top5)


def test_table2_semi_supervised(pub):
    nums = [float(x) for x in re.findall(NUM, SEMI)]
    simclr = [float(x) for x in re.findall(NUM, SIMCLR)][2:]  # after the linear pair
    for method, vals in (("byol", nums[:4]), ("supervised", nums[4:]), ("simclr", simclr)):
        for (frac, metric), v in zip([(0.01, "top1"), (0.01, "top5"), (0.1, "top1"), (0.1, "top5")], vals):
            assert value(pub, method, "semi_supervised", metric, label_fraction=frac) == v


def test_table3_transfer(pub):
    assert len(TRANSFER_HEADER.split(",")) == len(TRANSFER_SETS)
    for (method, protocol), line in TRANSFER.items():
        nums = [float(x) for x in re.findall(NUM, line)]
        assert len(nums) == 12
        for ds, v in zip(TRANSFER_SETS, nums):
            assert value(pub, method, protocol, OWN_METRIC.get(ds, "top1"), eval_dataset=ds) == v


def test_small_scale_cifar_and_moco(pub):
    nums = [float(x) for x in re.findall(NUM, SOLO)]
    for i, method in enumerate(["byol", "simclr", "moco_v2", "moco_v3"]):
        assert value(pub, method, "linear", "top1", eval_dataset="cifar10", backbone="resnet18") == nums[i]
        assert value(pub, method, "linear", "top1", eval_dataset="cifar100", backbone="resnet18") == nums[4 + i]
    knn = [100 * float(x) for x in re.findall(NUM, LIGHTLY)]  # lightly reports fractions
    for method, v in zip(["byol", "simclr", "moco_v2"], knn):
        assert value(pub, method, "knn", "top1", eval_dataset="cifar10", backbone="resnet18") == pytest.approx(v)
    v2 = [float(x) for x in re.findall(NUM, MOCO[0])]
    assert value(pub, "moco_v2", "linear", "top1", epochs=200) == v2[0]
    assert value(pub, "moco_v2", "linear", "top1", epochs=800) == v2[2]
    for epochs, v in zip((100, 300, 1000), re.findall(NUM, MOCO[1])):
        assert value(pub, "moco_v3", "linear", "top1", epochs=epochs) == float(v)


def test_check_rejects_malformed_rows(pub):
    good = pub[pub["file"] == files()[0]].drop(columns="file").reset_index(drop=True)
    good = good.assign(note=good["note"].replace("", None))
    check(good, "ok.csv")
    with pytest.raises(ValueError, match="eval_dataset.*'ImageNet'"):
        check(good.assign(eval_dataset="ImageNet"), "bad.csv")
    with pytest.raises(ValueError, match="value outside 0-100"):
        check(good.assign(value=good["value"] * 100), "bad.csv")
    with pytest.raises(ValueError, match="same setting appears twice"):
        check(pd.concat([good, good.iloc[:1]], ignore_index=True), "bad.csv")
