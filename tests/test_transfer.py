"""Transfer evaluation, and a tiny suite end to end with every protocol (digits -> mnist5k)."""
import json

import pytest

from ssl_bench.cli.main import main
from ssl_bench.errors import UserError
from ssl_bench.registry import EVALUATIONS, load_plugins

SUITE = """
name: every-protocol
seeds: [0]
data_root: DATA_ROOT  # an empty folder: cifar10 must be missing whatever the machine has cached
datasets: [{name: digits, image_size: 8}]
backbones: [{name: resnet18, label: r18-tiny, kwargs: {channels: [4, 8, 8, 8], stem_width: 4}}]
methods: [random]  # no pretraining: the from-scratch baseline is tested in test_semi_supervised
pretrain: {epochs: 1, batch_size: 128, amp: off, num_workers: 0}
evaluations:
  - {name: knn, params: {k: 10}}
  - {name: linear, params: {num_l2: 2, max_iter: 50}}
  - {name: linear_sgd, params: {lrs: [0.1], epochs: 1}}
  - {name: semi_supervised, params: {fractions: [0.01, 0.1], lrs: [0.05], epochs: [1]}}
  - {name: transfer, params: {datasets: [mnist5k, cifar10], variant: linear, num_l2: 2, max_iter: 50}}
  - {name: transfer, params: {datasets: [mnist5k], variant: finetune, lrs: [0.05], weight_decays: [0],
                              epochs: 1, batch_size: 512}}
output: {table: true, report: false}
"""


@pytest.mark.slow
def test_every_protocol_end_to_end(tmp_path):
    suite = tmp_path / "suite.yaml"
    (tmp_path / "data").mkdir()
    suite.write_text(SUITE.replace("DATA_ROOT", str(tmp_path / "data")))
    out = tmp_path / "out"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 3  # cifar10's row failed (not on disk)
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by = {(r["protocol"], r["eval_dataset"], r["metric"], r["label_fraction"]): r for r in recs}
    assert {r["protocol"] for r in recs} == {"knn", "linear", "linear_sgd", "semi_supervised", "transfer_linear",
                                             "transfer_finetune"}
    for key in [("semi_supervised", "digits", m, f) for m in ("top1", "top5") for f in (0.01, 0.1)] + \
               [(p, "mnist5k", m, None) for p in ("transfer_linear", "transfer_finetune") for m in ("top1", "top5")]:
        assert by[key]["status"] == "ok" and 0 <= by[key]["value"] <= 100, key
    for p in ("transfer_linear", "transfer_finetune"):  # mnist5k is 28 px, the encoder 8 px: resized, recorded
        e = by[(p, "mnist5k", "top1", None)]["extra"]
        assert e["native_size"] == 28 and e["input_size"] == 8 and e["resized"] is True
    failed = [r for r in recs if r["status"] == "failed"]  # cifar10 is not on disk: that dataset only fails
    assert len(failed) == 1 and failed[0]["protocol"] == "transfer_linear"
    assert failed[0]["eval_dataset"] == "cifar10" and failed[0]["value"] is None and "cifar" in failed[0]["error"]
    subsets = sorted(p.name for p in out.glob("runs/*/label_subsets/*.txt"))
    assert subsets == ["digits_10pct_seed0.txt", "digits_1pct_seed0.txt"]


def test_unavailable_dataset_gives_one_failed_row():
    from ssl_bench.errors import DatasetUnavailableError

    class Ctx:
        def get_dataset(self, name):
            raise DatasetUnavailableError(f"{name}: not found in /data; place it there")

    load_plugins()
    rows = EVALUATIONS.get("transfer")(datasets=["dtd", "flowers102"], variant="finetune").evaluate(Ctx())
    assert [(r["protocol"], r["eval_dataset"], r["status"], r["value"]) for r in rows] == [
        ("transfer_finetune", "dtd", "failed", None), ("transfer_finetune", "flowers102", "failed", None)]
    assert "place it there" in rows[0]["error"]


@pytest.mark.parametrize("params,field", [({"datasets": []}, "datasets"), ({"datasets": ["nope"]}, "datasets"),
                                          ({"datasets": ["digits"], "variant": "full"}, "variant"),
                                          ({"datasets": ["digits"], "weight_decays": [-1]}, "weight_decays")])
def test_bad_params_are_user_errors(params, field):
    load_plugins()
    with pytest.raises(UserError, match=f"params.{field}"):
        EVALUATIONS.get("transfer")(**params)
