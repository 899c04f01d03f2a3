"""One vocabulary: a protocol, a dataset and a metric declare their names, labels and order where they are defined,
and tables, published rows and plots read them from the registry. A toy evaluation and a toy dataset, one file
each, appear in tables under their own names and in their own order with no other edit."""
from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest

import ssl_bench.published as published
from ssl_bench.registry import DATASET_INFO, DATASETS, EVALUATIONS, import_plugin_file, load_plugins
from ssl_bench.report.tables import load_results, render
from ssl_bench.report.tables import vocab

# BYOL Table 3's column order [BYOL Table 3: Food, C10, C100, Birds, SUN, Cars, Air, VOC, DTD, Pets, Caltech, Flowers]
# and each dataset's own metric [BYOL Sec. 4.2], restated here as data.
TABLE3 = ["food101", "cifar10", "cifar100", "birdsnap", "sun397", "stanford_cars", "fgvc_aircraft", "voc2007", "dtd",
          "oxford_iiit_pet", "caltech101", "flowers102"]
OWN_METRIC = {"fgvc_aircraft": "mean_per_class", "oxford_iiit_pet": "mean_per_class", "caltech101": "mean_per_class",
              "flowers102": "mean_per_class", "voc2007": "map11"}

TOY_EVALUATION = '''
from ssl_bench.evaluation import Evaluation, Protocol
from ssl_bench.registry import register_evaluation


@register_evaluation("toy_probe")
class ToyProbe(Evaluation):
    # shown in the linear table, before every built-in linear protocol (linear is 20)
    protocols = (Protocol("toy_probe", "Toy probe", 5, ("top1", "top5"), table="linear"),)

    def evaluate(self, ctx):
        return []
'''
TOY_DATASET = '''
from ssl_bench.registry import register_dataset


@register_dataset("toyset", label="Toy Set", metric="mean_per_class", order=0.5)  # before Food101 (Table 3's first)
def load_toyset(root, download=False, val_fraction=0.1, test_fraction=0.2, split_seed=0):
    raise NotImplementedError("tables only")
'''


@pytest.fixture
def toy_plugins(tmp_path, monkeypatch):
    """Import the two one-file plugins; the registries are restored afterwards."""
    load_plugins()
    for reg in (EVALUATIONS, DATASETS, DATASET_INFO):
        monkeypatch.setattr(reg, "_items", dict(reg._items))
    for name, text in (("toy_evaluation.py", TOY_EVALUATION), ("toy_dataset.py", TOY_DATASET)):
        (tmp_path / name).write_text(textwrap.dedent(text))
        import_plugin_file(tmp_path / name)


def _rec(method, protocol, eval_dataset, metric, value):
    return {"suite": "toy", "run_id": f"{method}-s0", "method": method, "backbone": "r18", "pretrain_dataset": "digits",
            "protocol": protocol, "eval_dataset": eval_dataset, "metric": metric, "value": value, "seed": 0,
            "status": "ok", "epochs": 10, "eval_key": f"{protocol}:{eval_dataset}"}


def _table(text: str, title: str) -> list[list[str]]:
    """The markdown table under `title`: its header, then its rows (the rule line dropped)."""
    block = text.split(f"### {title}")[1].split("###")[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[:1] + lines[2:]]


def test_a_toy_protocol_and_dataset_appear_under_their_own_names_and_order(toy_plugins, tmp_path):
    recs = []
    for method, base in (("byol", 80.0), ("simclr", 70.0)):
        recs += [_rec(method, "linear", "digits", "top1", base), _rec(method, "toy_probe", "digits", "top1", base - 5),
                 _rec(method, "transfer_linear", "food101", "top1", base - 10),
                 _rec(method, "transfer_linear", "toyset", "top1", base - 20),
                 _rec(method, "transfer_linear", "toyset", "mean_per_class", base - 15)]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    text = render(load_results([str(tmp_path / "out")]), layout="all")
    # its label, in its declared order (5) before Linear (20), in the preset table it names
    assert _table(text, "Linear evaluation (frozen encoder)")[:2] == [["Method", "Toy probe Top-1", "Linear Top-1"],
                                                                      ["byol", "**75.0**", "**80.0**"]]
    # the dataset's label, its headline metric (not top-1) and its order (0.5) before Food101 (Table 3's first)
    transfer = _table(text, "Transfer, linear: other datasets")
    assert transfer[:2] == [["Method", "Toy Set (mpc)", "Food101"], ["byol", "**65.0**", "**70.0**"]]
    # the end-of-run summary names the protocol too, and published rows may use it
    assert vocab.protocol("toy_probe").label == "Toy probe" and vocab.dataset_label("toyset", "map11") == \
        "Toy Set (mAP)"
    row = published.load_published().drop(columns="file").iloc[:1].assign(
        protocol="toy_probe", pretrain_dataset="toyset", eval_dataset="toyset")
    published.check(row.assign(note=None), "toy.csv")


def test_without_the_plugin_the_names_are_unknown_to_published_rows():
    row = published.load_published().drop(columns="file").iloc[:1].assign(protocol="toy_probe", note=None)
    with pytest.raises(ValueError, match="protocol \\['toy_probe'\\]"):
        published.check(row, "toy.csv")


def test_the_12_transfer_datasets_are_declared_in_table3_order_with_their_metrics():
    declared = vocab.datasets()
    assert set(TABLE3) <= set(declared)
    table3 = sorted((d for d in declared.values() if d.order is not None and d.name != "imagenet"),
                    key=lambda d: d.order)
    assert [d.name for d in table3] == TABLE3
    assert {d.name: d.headline for d in table3} == {n: OWN_METRIC.get(n, "top1") for n in TABLE3}
    assert declared["fgvc_aircraft"].display == "Aircraft" and declared["imagenet"].display == "ImageNet"
    # ImageNet is declared for tables and published rows but has no loader of its own (image_folder reads it)
    assert "imagenet" in declared and "imagenet" not in DATASETS and all(n in DATASETS for n in TABLE3)


def test_protocols_come_from_the_evaluations():
    protos = vocab.protocols()
    assert {"knn", "knn_max", "linear", "linear_sgd", "online_linear", "semi_supervised", "transfer_linear",
            "transfer_finetune"} <= set(protos)
    order = [p for p in sorted(protos, key=lambda p: protos[p].order) if p in
             ("knn", "knn_max", "linear", "linear_sgd", "online_linear", "semi_supervised")]
    assert order == ["knn", "knn_max", "linear", "linear_sgd", "online_linear", "semi_supervised"]
    assert vocab.value_label("protocol", "linear_sgd") == "Linear (SGD)"
    assert vocab.value_label("metric", "map11") == "mAP (11-pt)" and vocab.value_label("metric", "new") == "new"


def test_no_second_lists_remain():
    for name in ("PROTOCOLS", "DATASETS", "METRICS", "TRANSFER_ORDER", "DATASET_LABEL", "PROTOCOL_LABEL"):
        assert not hasattr(vocab, name), name
    for name in ("DATASETS", "PROTOCOLS", "METRICS"):
        assert not hasattr(published, name), name


def test_undeclared_names_follow_the_declared_ones_in_order_of_appearance():
    seen = {"zeta": 0, "alpha": 1}
    keys = sorted(["zeta", "alpha", "linear", "knn"], key=lambda v: vocab.sort_key("protocol", v, seen))
    assert keys == ["knn", "linear", "zeta", "alpha"]
    frame = pd.DataFrame({"eval_dataset": ["digits"], "metric": ["top1"]})
    assert vocab.value_label("eval_dataset", frame["eval_dataset"][0]) == "Digits"
