"""Published reference rows: they load, use the record vocabulary, and equal the papers' numbers restated here."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from ssl_bench.published import check, files, load_published
from ssl_bench.report.tables.vocab import datasets, protocols

# The papers' numbers, kept here as data (sources: BYOL Tables 1-3, SimCLR Tables 6-7, MoCo v2/v3, solo-learn's
# and lightly's benchmark pages; see docs/references.md); the published CSVs are checked against them below.
TABLE1 = ("[BYOL Table 1] ResNet-50 linear top-1/top-5: SimCLR 69.3/89.0, MoCo v2 71.1/-, InfoMin 73.0/91.1, "
          "BYOL 74.3/91.6;")  # an SGD head trained on augmented crops: the `linear_sgd` protocol, not `linear`
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
        "(CIFAR-100: 70.46, 65.78, 69.89, 68.83).")  # the online linear head during pretraining, batch 256
LIGHTLY = "lightly kNN bs512/800 ep: BYOL 0.910, SimCLR 0.879, MoCo 0.899."  # max over epochs; MoCo bank 8,192
MOCO = ["ResNet-50 200 ep: 67.5 +- 0.1; 800 ep: 71.1.", "ResNet-50: 100 ep 68.9, 300 ep 72.8, 1000 ep 74.6."]
# Barlow Twins, VICReg, SimSiam (peers.md b1, b3, b4; the official READMEs and papers): ImageNet ResNet-50 linear,
# solo-learn's CIFAR-10 / CIFAR-100 online linear, lightly's CIFAR-10 (bs 512, 800 ep) and Imagenette kNN.
ZOO_IMAGENET = "Barlow Twins 73.2 (paper), 73.5 (repo); VICReg 73.2; SimSiam 100 ep 68.1 (batch 512), 68.3 (batch 256)."
ZOO_SOLO = "Barlow Twins 92.10 / 70.90, VICReg 92.07 / 68.54, SimSiam 90.51 / 66.04."
ZOO_LIGHTLY_CIFAR = "BarlowTwins .859, SimSiam .904."  # VICReg is not in lightly's CIFAR-10 table
ZOO_IMAGENETTE = "Barlow .852, VICReg .845, SimSiam .872."
# Column order of the Table 3 line above, and each dataset's metric [BYOL Sec. 4.2].
TRANSFER_SETS = ["food101", "cifar10", "cifar100", "birdsnap", "sun397", "stanford_cars", "fgvc_aircraft",
                 "voc2007", "dtd", "oxford_iiit_pet", "caltech101", "flowers102"]
OWN_METRIC = {"fgvc_aircraft": "mean_per_class", "oxford_iiit_pet": "mean_per_class",
              "caltech101": "mean_per_class", "flowers102": "mean_per_class", "voc2007": "map11"}
NUM = r"\d+\.\d+"


@pytest.fixture(scope="module")
def pub() -> pd.DataFrame:
    return load_published()


def row(pub, method, protocol, metric, eval_dataset="imagenet", backbone="resnet50", label_fraction=None,
        epochs=None, pretrain_dataset=None, source=None) -> pd.Series:
    q = (pub["method"] == method) & (pub["protocol"] == protocol) & (pub["metric"] == metric) & \
        (pub["eval_dataset"] == eval_dataset) & (pub["backbone"] == backbone) & \
        (pub["pretrain_dataset"] == (pretrain_dataset or ("imagenet" if backbone != "resnet18" else eval_dataset)))
    q &= pub["label_fraction"].isna() if label_fraction is None else pub["label_fraction"] == label_fraction
    if epochs is not None:
        q &= pub["epochs"] == epochs
    if source is not None:
        q &= pub["source"].str.contains(source, regex=False)
    hits = pub.loc[q]
    assert len(hits) == 1, (method, protocol, metric, eval_dataset, len(hits))
    return hits.iloc[0]


def value(pub, *args, **kw) -> float:
    return float(row(pub, *args, **kw)["value"])


def test_every_file_loads_with_sources_settings_and_vocabulary(pub):
    assert set(files()) == set(pub["file"]) and len(files()) >= 4
    assert pub["source"].str.len().min() > 5 and pub["eval_recipe"].str.len().min() > 20
    assert set(pub["protocol"]) == {"linear_sgd", "online_linear", "knn_max", "semi_supervised", "transfer_linear",
                                    "transfer_finetune", "knn", "finetune", "attentive_probe"}  # the last 3: vit_imagenet.csv
    assert pub["value"].between(0, 100).all()
    assert set(pub["protocol"]) <= set(protocols()) and set(pub["eval_dataset"]) <= set(datasets())


def test_table1_linear(pub):
    names = {"SimCLR": "simclr", "MoCo v2": "moco_v2", "InfoMin": "infomin", "BYOL": "byol"}
    pairs = re.findall(rf"(SimCLR|MoCo v2|InfoMin|BYOL) ({NUM})/({NUM}|-)", TABLE1)
    assert len(pairs) == 4
    for name, top1, top5 in pairs:
        assert value(pub, names[name], "linear_sgd", "top1", source="BYOL") == float(top1)
        if top5 == "-":
            assert pub[(pub["method"] == names[name]) & (pub["metric"] == "top5")].empty
        else:
            assert value(pub, names[name], "linear_sgd", "top5", source="BYOL") == float(top5)
    top1, top5 = re.findall(NUM, TABLE1_R200)
    assert value(pub, "byol", "linear_sgd", "top1", backbone="resnet200_2x") == float(top1)
    assert value(pub, "byol", "linear_sgd", "top5", backbone="resnet200_2x") == float(top5)
    byol = row(pub, "byol", "linear_sgd", "top1", source="BYOL")
    assert (byol["epochs"], byol["batch_size"]) == (1000, 4096)  # BYOL's 1000-epoch, batch-4096 recipe
    assert "80 ep" in byol["eval_recipe"] and "Nesterov" in byol["eval_recipe"] and "crop" in byol["eval_recipe"]


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
        assert value(pub, method, "online_linear", "top1", eval_dataset="cifar10", backbone="resnet18") == nums[i]
        assert value(pub, method, "online_linear", "top1", eval_dataset="cifar100", backbone="resnet18") == nums[4 + i]
    knn = [100 * float(x) for x in re.findall(NUM, LIGHTLY)]  # lightly reports fractions
    for method, v in zip(["byol", "simclr", "moco_v2"], knn):
        assert value(pub, method, "knn_max", "top1", eval_dataset="cifar10", backbone="resnet18") == pytest.approx(v)
    v2 = [float(x) for x in re.findall(NUM, MOCO[0])]
    assert value(pub, "moco_v2", "linear_sgd", "top1", epochs=200) == v2[0]
    assert value(pub, "moco_v2", "linear_sgd", "top1", epochs=800) == v2[2]
    for epochs, v in zip((100, 300, 1000), re.findall(NUM, MOCO[1])):
        assert value(pub, "moco_v3", "linear_sgd", "top1", epochs=epochs) == float(v)


def test_small_scale_settings_say_what_was_measured(pub):
    solo = pub[pub["source"].str.contains("solo-learn")]
    assert set(solo["protocol"]) == {"online_linear"} and set(solo["batch_size"]) == {256.0}
    assert set(solo["epochs"]) == {1000.0} and solo["eval_recipe"].str.contains("online").all()
    lightly = pub[pub["source"].str.contains("lightly") & (pub["eval_dataset"] == "cifar10")]
    assert set(lightly["protocol"]) == {"knn_max"} and set(lightly["batch_size"]) == {512.0}
    assert set(lightly["epochs"]) == {800.0} and lightly["eval_recipe"].str.contains("MAXIMUM").all()
    moco = row(pub, "moco_v2", "knn_max", "top1", eval_dataset="cifar10", backbone="resnet18")
    assert "8,192" in moco["note"]  # lightly's MoCo memory bank, not MoCo v2's 65,536
    assert row(pub, "moco_v3", "linear_sgd", "top1", epochs=300)["batch_size"] == 4096  # moco-v3 CONFIG.md
    assert row(pub, "moco_v2", "linear_sgd", "top1", epochs=200)["batch_size"] == 256


def test_barlow_twins_vicreg_simsiam_rows(pub):
    nums = [float(x) for x in re.findall(NUM, ZOO_IMAGENET)]  # 73.2, 73.5, 73.2, 68.1, 68.3
    paper = row(pub, "barlow_twins", "linear_sgd", "top1", source="arXiv:2103.03230")
    repo = row(pub, "barlow_twins", "linear_sgd", "top1", source="barlowtwins README")
    assert (paper["value"], repo["value"]) == (nums[0], nums[1])
    assert (paper["epochs"], paper["batch_size"], repo["epochs"], repo["batch_size"]) == (1000, 2048, 1000, 2048)
    assert value(pub, "vicreg", "linear_sgd", "top1", epochs=1000) == nums[2]
    for batch, v in ((512, nums[3]), (256, nums[4])):
        hit = pub[(pub["method"] == "simsiam") & (pub["protocol"] == "linear_sgd") & (pub["batch_size"] == batch)]
        assert len(hit) == 1 and hit["value"].iloc[0] == v and hit["epochs"].iloc[0] == 100
        assert "LARS" in hit["eval_recipe"].iloc[0] and "90 ep" in hit["eval_recipe"].iloc[0]
    solo = [float(x) for x in re.findall(NUM, ZOO_SOLO)]
    for i, method in enumerate(["barlow_twins", "vicreg", "simsiam"]):
        for j, ds in enumerate(["cifar10", "cifar100"]):
            r = row(pub, method, "online_linear", "top1", eval_dataset=ds, backbone="resnet18")
            assert (r["value"], r["epochs"], r["batch_size"]) == (solo[2 * i + j], 1000, 256)
    for method, v in zip(["barlow_twins", "simsiam"], re.findall(r"\.\d+", ZOO_LIGHTLY_CIFAR)):
        r = row(pub, method, "knn_max", "top1", eval_dataset="cifar10", backbone="resnet18")
        assert r["value"] == pytest.approx(100 * float(v)) and (r["epochs"], r["batch_size"]) == (800, 512)
    assert pub[(pub["method"] == "vicreg") & (pub["protocol"] == "knn_max") & (pub["eval_dataset"] == "cifar10")].empty
    for method, v in zip(["barlow_twins", "vicreg", "simsiam"], re.findall(r"\.\d+", ZOO_IMAGENETTE)):
        r = row(pub, method, "knn_max", "top1", eval_dataset="imagenette", backbone="resnet18")
        assert r["value"] == pytest.approx(100 * float(v)) and (r["epochs"], r["batch_size"]) == (800, 256)
        assert "k=20" in r["eval_recipe"] and "MAXIMUM" in r["eval_recipe"] and "Imagenette" in r["source"]


# issue 23: the official ResNet-50 numbers (swav and dino READMEs, NNCLR Table 1) and the peers' small-scale rows
# (/work/shared/reference/peers.md b1, b3: solo-learn's CIFAR table, lightly's CIFAR-10 bs512/800 ep and
# Imagenette tables).
ZOO_B_IMAGENET = "SwAV 800 ep 75.3, DINO ResNet-50 75.3, NNCLR 75.4."
ZOO_B_SOLO = "solo-learn 1000 ep: NNCLR 91.88 / 69.62, DINO 89.52 / 66.76, SwAV 89.17 / 64.88 (CIFAR-10 / CIFAR-100)."
ZOO_B_LIGHTLY = "lightly kNN bs512/800 ep: DINO 0.848, NNCLR 0.892, SwaV 0.884; Imagenette: DINO 0.888, NNCLR 0.884, SwaV 0.902."


def test_zoo_rows(pub):
    for method, v in zip(("swav", "dino", "nnclr"), re.findall(NUM, ZOO_B_IMAGENET), strict=True):
        assert value(pub, method, "linear_sgd", "top1") == float(v)
    assert row(pub, "dino", "linear_sgd", "top1")["batch_size"] == 4080  # dino#133: 80 GPUs x 51
    assert row(pub, "swav", "linear_sgd", "top1")["epochs"] == 800
    nums = [float(x) for x in re.findall(NUM, ZOO_B_SOLO)]
    for i, method in enumerate(("nnclr", "dino", "swav")):
        assert value(pub, method, "online_linear", "top1", eval_dataset="cifar10", backbone="resnet18") == nums[2 * i]
        assert value(pub, method, "online_linear", "top1", eval_dataset="cifar100",
                     backbone="resnet18") == nums[2 * i + 1]
    knn = [100 * float(x) for x in re.findall(NUM, ZOO_B_LIGHTLY)]
    for i, method in enumerate(("dino", "nnclr", "swav")):
        assert value(pub, method, "knn_max", "top1", eval_dataset="cifar10", backbone="resnet18") == \
            pytest.approx(knn[i])
        imagenette = row(pub, method, "knn_max", "top1", eval_dataset="imagenette", backbone="resnet18")
        assert imagenette["value"] == pytest.approx(knn[3 + i]) and "k=20" in imagenette["eval_recipe"]
        assert (imagenette["epochs"], imagenette["batch_size"]) == (800, 256)


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
    # names outside the registry's vocabulary, a metric the protocol never writes, settings that are not numbers
    with pytest.raises(ValueError, match="protocol.*'linear_probe'.*allowed: .*'knn_max'.*'linear_sgd'"):
        check(good.assign(protocol="linear_probe"), "bad.csv")
    knn = pub[pub["protocol"] == "knn_max"].drop(columns="file").reset_index(drop=True)
    check(knn, "ok.csv")
    with pytest.raises(ValueError, match="metric \\['top5'\\] for protocol knn_max"):
        check(knn.assign(metric="top5"), "bad.csv")
    with pytest.raises(ValueError, match="batch_size \\[0.0\\].*allowed: a whole number >= 1"):
        check(good.assign(batch_size=0.0), "bad.csv")
    with pytest.raises(ValueError, match="empty eval_recipe"):
        check(good.assign(eval_recipe=None), "bad.csv")


# --- deltas never cross protocols or settings ------------------------------------------------------------------

# Evaluation recipes our records carry, as the evaluation plugins write them (Evaluation.recipe) for the params
# named here: the paper's protocols as the ImageNet suite states them, and the plugins' CPU defaults.
BYOL_LINEAR = dict(epochs=80, batch_size=1024, lrs=[0.4, 0.3, 0.2, 0.1, 0.05], lr_batch_scaling=True,
                   crop_sampler="deepmind")
BYOL_SEMI = dict(fractions=[0.01], lrs=[0.005, 0.01, 0.02, 0.05, 0.1], epochs=[30, 50], batch_size=1024,
                 lr_batch_scaling=True, crop_sampler="deepmind")
SIMCLR_1PCT = "file sha256 71e82a48ba78"  # what SimCLR's 1percent.txt records (its sha256, the suites' header)


def _recipes() -> dict[str, dict]:
    from ssl_bench.evaluations.knn import KNNEvaluation
    from ssl_bench.evaluations.knn_max import KnnMaxEvaluation
    from ssl_bench.evaluations.linear import LinearEvaluation
    from ssl_bench.evaluations.linear_sgd import LinearSGDEvaluation
    from ssl_bench.evaluations.online_linear import OnlineLinearEvaluation
    from ssl_bench.evaluations.semi_supervised import SemiSupervisedEvaluation

    monitor = {"knn_monitor": {"every": 1, "k": 200, "temperature": 0.1, "val_size": 1000, "bank_size": None}}
    semi = SemiSupervisedEvaluation(**BYOL_SEMI).recipe({"seed": 0})
    return {"lbfgs": LinearEvaluation().recipe({}), "sgd_paper": LinearSGDEvaluation(**BYOL_LINEAR).recipe({}),
            "sgd_default": LinearSGDEvaluation().recipe({}), "knn": KNNEvaluation().recipe({}),
            "knn_max": KnnMaxEvaluation().recipe(monitor), "semi_paper": {**semi, "subset": SIMCLR_1PCT},
            "online": OnlineLinearEvaluation().recipe({"online_linear": {"base_lr": 0.1}}, views=2)}


# (method, backbone, pretrain data, protocol, eval data, metric, label fraction, epochs, value, recipe): one record
# each, of every protocol, some in the setting and recipe of a published row and some not (another protocol,
# other epochs, another recipe).
OURS = [
    ("byol", "resnet50", "imagenet", "linear", "imagenet", "top1", None, 1000, 70.0, "lbfgs"),  # Table 1 is SGD
    ("byol", "resnet50", "imagenet", "linear_sgd", "imagenet", "top1", None, 1000, 73.0, "sgd_paper"),  # 74.3
    ("moco_v2", "resnet50", "imagenet", "linear_sgd", "imagenet", "top1", None, 200, 66.0, "sgd_default"),  # lr 30
    ("simclr", "resnet50", "imagenet", "linear_sgd", "imagenet", "top1", None, 100, 60.0, "sgd_paper"),  # 1000 ep
    ("byol", "resnet18", "cifar10", "knn", "cifar10", "top1", None, 800, 89.0, "knn"),  # lightly reports knn_max
    ("byol", "resnet18", "cifar10", "knn_max", "cifar10", "top1", None, 800, 90.0, "knn_max"),  # val, not test
    ("simclr", "resnet18", "cifar10", "knn_max", "cifar10", "top1", None, 200, 80.0, "knn_max"),  # lightly: 800 ep
    ("byol", "resnet18", "cifar10", "online_linear", "cifar10", "top1", None, 1000, 92.0, "online"),  # solo: LARS
    ("byol", "resnet18", "cifar10", "linear", "cifar10", "top1", None, 1000, 91.0, "lbfgs"),  # solo-learn is online
    ("byol", "resnet50", "imagenet", "semi_supervised", "imagenet", "top1", 0.01, 1000, 50.0, "semi_paper"),  # 53.2
    ("byol", "resnet50", "imagenet", "transfer_linear", "food101", "top1", None, 1000, 74.0, "lbfgs"),  # 75.3
    ("supervised", "resnet50", "imagenet", "transfer_linear", "food101", "top1", None, 90, 70.0, "lbfgs"),  # no ep
]
# The cells that have a published row of exactly their protocol, setting and recipe, and that row's number.
EXPECTED_DELTAS = {("byol", "linear_sgd", "imagenet"): 74.3, ("byol", "semi_supervised", "imagenet"): 53.2,
                   ("byol", "transfer_linear", "food101"): 75.3}
KEYS = ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "label_fraction", "epochs")


def _record(r: tuple, recipes: dict) -> dict:
    return dict(zip(KEYS + ("value",), r[:9]), seed=0, status="ok", suite="t", run_id=f"{r[0]}-{r[1]}-{r[7]}",
                eval_key=f"{r[3]}:{r[4]}", recipe=recipes[r[9]])


@pytest.fixture
def mixed(tmp_path):
    import json

    recipes = _recipes()
    lines = [_record(r, recipes) for r in OURS]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return str(tmp_path)


def _same_recipe(ours: dict, stated: dict) -> bool:
    """Every field the source states equals ours (numbers as floats), written out here independently."""
    def same(a, b):
        if isinstance(a, list) or isinstance(b, list):
            return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
        if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
            return a == b
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))

    return set(ours) == set(stated) and all(v == "?" or same(ours[k], v) for k, v in stated.items())


def _setting_of(line: pd.Series, frame: pd.DataFrame) -> dict:
    """Our record behind one line of the tidy table: the only record with the line's keys."""
    from ssl_bench.report.tables.layouts import add_target

    recs = add_target(frame)
    for key in ("method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "target", "metric",
                "label_fraction", "epochs"):
        if key in line and not pd.isna(line[key]) and key in recs:
            recs = recs[recs[key] == line[key]]
    assert len(recs) == 1, line.to_dict()
    return recs.iloc[0].to_dict()


def test_deltas_only_between_rows_of_one_protocol_and_setting(mixed, pub):
    from ssl_bench.report.tables import load_results, table_frame

    frame = load_results([mixed])
    tidy = table_frame(frame, layout="all", with_published=True)
    ours = tidy[~tidy["reported"].astype(bool)]
    found = {}
    for _, line in ours[ours["delta"].notna()].iterrows():
        rec = _setting_of(line, frame)
        same = pub
        for key in KEYS:  # the published row must agree on every field, the protocol first of all
            same = same[same[key].isna()] if rec[key] is None or pd.isna(rec[key]) else same[same[key] == rec[key]]
        same = same[[isinstance(r, dict) and _same_recipe(rec["recipe"], r) for r in same["recipe"]]]
        assert len(same) == 1, rec
        assert line["delta"] == pytest.approx(line["mean"] - same["value"].iloc[0])
        found[(rec["method"], rec["protocol"], rec["eval_dataset"])] = same["value"].iloc[0]
    assert found == EXPECTED_DELTAS
    reported = tidy[tidy["reported"].astype(bool)]
    # every reported row that matched none of our cells is a reference row, e.g. BYOL Table 1 beside `linear`
    assert reported["reference"].astype(bool).sum() > 0
    for _, line in reported[~reported["reference"].astype(bool)].iterrows():
        assert (line["method"], line["protocol"]) in {(m, p) for m, p, _ in EXPECTED_DELTAS}


def test_reference_rows_are_marked_and_name_their_protocol(mixed):
    from ssl_bench.report.tables import load_results, render

    text = render(load_results([mixed]), layout="all", with_published=True)
    # our `linear` and `linear_sgd` side by side: BYOL's 74.3 sits in the Linear (SGD) column, with its delta
    lin = text.split("### Linear evaluation")[1].split("###")[0]
    header = next(ln for ln in lin.splitlines() if ln.startswith("| Method"))
    assert "Δ Linear (SGD) Top-1" in header and "Δ Linear Top-1" not in header
    assert "Linear (online)" not in lin  # the online head has its own table, not the frozen-encoder one
    online = text.split("### Online linear head")[1].split("###")[0]
    assert "Δ Linear (online) Top-1" not in online  # solo-learn's head is LARS-adapted, ours plain SGD
    assert "optimizer (ours sgd, reported lars)" in online  # the note names the field that differs
    simclr = next(ln for ln in lin.splitlines() if ln.startswith("| simclr (reported"))
    assert simclr.split("|")[1].strip().endswith("‡")  # 1000 ep published, 100 ep ours: a reference row
    assert "Linear (SGD) (`linear_sgd`)" in lin and "80 ep" in lin  # the note names its protocol and recipe
    moco = next(ln for ln in lin.splitlines() if ln.startswith("| moco_v2 (reported") and "| 200 ep" in ln)
    assert moco.split("|")[1].strip().endswith("‡")  # our default 20-epoch grid, MoCo's lincls lr 30
    assert "lrs_per_256 (ours [0.4, 0.1, 0.02], reported [30])" in lin
    knn = text.split("### k-nearest-neighbour")[1].split("###")[0]
    assert "Δ" not in next(ln for ln in knn.splitlines() if ln.startswith("| Method"))  # val subset vs test
    assert "kNN (max over epochs) (`knn_max`)" in knn and "MAXIMUM" in knn
    assert "split (ours val, reported test)" in knn and "n_eval (ours 1000, reported 10000)" in knn
    transfer = text.split("### Transfer, linear")[1].split("###")[0]
    sup = next(ln for ln in transfer.splitlines() if ln.startswith("| supervised (reported"))
    assert sup.split("|")[1].strip().endswith("‡")  # Supervised-IN states no epochs: no delta against our 90


def test_a_table_of_linear_alone_prints_no_delta_against_table1(mixed):
    from ssl_bench.report.tables import load_results, render

    frame = load_results([mixed])
    text = render(frame[frame["protocol"] == "linear"], layout="linear", with_published=True)
    assert "Δ" not in text.split("\n\n")[1]  # the table itself: no delta column at all
    byol = next(ln for ln in text.splitlines() if ln.startswith("| byol (reported, Linear (SGD), 1000 ep"))
    assert "74.3" in byol and "‡" in byol


@pytest.mark.parametrize("batch, has_delta", [(4096, True), (256, False), (None, True)])
def test_a_batch_size_our_records_state_must_match_too(tmp_path, batch, has_delta):
    import json

    from ssl_bench.report.tables import load_results, table_frame

    rec = {**_record(OURS[1], _recipes()), "batch_size": batch}
    (tmp_path / "results.jsonl").write_text(json.dumps(rec) + "\n")
    tidy = table_frame(load_results([str(tmp_path)]), layout="linear", with_published=True)
    ours = tidy[~tidy["reported"].astype(bool)].iloc[0]
    assert ours["delta"] == pytest.approx(73.0 - 74.3) if has_delta else pd.isna(ours["delta"])
