"""Issue #26 items 3, 5 and 6 through `ssl-bench run` on tiny data (digits at 8 px, a narrow resnet18, no or one
epoch): released weights judged by content (NaN refused, casts recorded, a file replaced in place is a new run
on --resume), a NaN collapse score counts as collapsed, a subset file's content never reaches results.jsonl,
and a full disk during a metrics write names the file."""
from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

import ssl_bench.engine.metrics_log as metrics_log
from conftest import results_rows
from ssl_bench.cli.main import main
from ssl_bench.weights.load import sha256
from test_pretrained import BACKBONE, _net

pytestmark = pytest.mark.slow  # every test here runs a suite

NAN_METHOD = '''
import torch
from ssl_bench.methods.baselines import RandomInit
from ssl_bench.registry import register_method


@register_method("nan_encoder_26", override=True)
class NanEncoder(RandomInit):
    """Test only: an untrained encoder whose weights are NaN, as a diverged run leaves them."""

    def __init__(self, backbone, num_classes=None, **params):
        super().__init__(backbone, num_classes, **params)
        with torch.no_grad():
            for p in self.backbone.parameters():
                p.fill_(float("nan"))
'''


def _suite(tmp_path: Path, methods: str, evaluations: str, plugins: str = "[]", epochs: int = 1) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: w26\nplugins: {plugins}\ndatasets: [{{name: digits, image_size: 8}}]\n"
                    f"backbones: [{BACKBONE}]\nmethods: {methods}\n"
                    f"pretrain: {{epochs: {epochs}, batch_size: 64, amp: off, num_workers: 0}}\n"
                    f"evaluations: {evaluations}\noutput: {{table: false, report: false}}\n")
    return str(path)


def test_released_weights_are_judged_by_what_they_hold(tmp_path, capsys):
    sd = _net(seed=1).state_dict()
    nan = {k: (v.clone().fill_(float("nan")) if k == "layer2.0.conv1.weight" else v) for k, v in sd.items()}
    torch.save(nan, tmp_path / "nan.pth")
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, tmp_path / "half.pth")
    (tmp_path / "nan_method.py").write_text(NAN_METHOD)
    secret = tmp_path / "notes.txt"  # a subset_file pointing at a file that is not a subset list
    secret.write_text("api_key = hunter2\nsecond line of my notes\n")
    methods = (f"[{{name: pretrained, label: nan, params: {{checkpoint: {tmp_path / 'nan.pth'}}}}}, "
               f"{{name: pretrained, label: half, params: {{checkpoint: {tmp_path / 'half.pth'}}}}}, nan_encoder_26]")
    evals = (f"[{{name: knn, params: {{k: 10}}}}, {{name: semi_supervised, params: {{subset_file: {secret}, "
             "subset_fraction: 0.01, "
             "epochs: [1], batch_size: 64}}]")
    suite, out = _suite(tmp_path, methods, evals, plugins="[nan_method.py]"), tmp_path / "out"
    assert main(["run", suite, "--out", str(out), "--quiet"]) == 3
    rows = results_rows(out)
    by = {(r["method"], r["protocol"], r["metric"]): r for r in rows}
    failed = by[("nan", "knn", None)]
    assert failed["status"] == "failed" and "tensor 'layer2.0.conv1.weight' holds NaN or inf values" in failed["error"]
    half = by[("half", "knn", "top1")]
    assert half["status"] == "ok" and half["released_weights"]["dtype_cast"].endswith(
        "float16 -> float32 (first 'conv1.weight')")
    assert half["released_weights"]["checkpoint_sha256"] == sha256(tmp_path / "half.pth")
    collapsed = by[("nan_encoder_26", "knn", "top1")]
    assert collapsed["status"] == "collapsed" and collapsed["collapse_score"] is None  # NaN, written as null
    subset_errors = [r["error"] for r in rows if r["protocol"] == "semi_supervised" and r["method"] != "nan"]
    assert subset_errors and all(f"subset_file {str(secret)!r}: 2 of 2 entries are not indices of the train split "
                                 "(lines 1, 2)" in e for e in subset_errors), subset_errors
    assert "hunter2" not in (out / "results.jsonl").read_text()
    # the file replaced in place: --resume evaluates the new weights instead of keeping the old rows
    torch.save(_net(seed=2).state_dict(), tmp_path / "half.pth")
    capsys.readouterr()
    assert main(["run", suite, "--out", str(out), "--quiet", "--resume"]) == 3
    new = [r for r in results_rows(out) if r["method"] == "half" and r["protocol"] == "knn"]
    shas = {r["released_weights"]["checkpoint_sha256"] for r in new}
    assert shas == {half["released_weights"]["checkpoint_sha256"], sha256(tmp_path / "half.pth")}
    assert len({r["run_id"] for r in new}) == 2


def test_a_full_disk_during_a_metrics_write_names_the_file(tmp_path, monkeypatch, capsys):
    def full(row):  # what f.writelines lets through on a full disk: an OSError without a file name
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(metrics_log, "dumps", full)
    out = tmp_path / "out"
    suite = _suite(tmp_path, "[{name: byol, params: {proj_hidden_dim: 16, proj_dim: 8, pred_hidden_dim: 16}}]",
                   "[{name: knn, params: {k: 10}}]")
    assert main(["run", suite, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    run = next((out / "runs").iterdir())
    assert err[-1] == f"error: cannot write {run / 'metrics.jsonl'}: [Errno 28] No space left on device (ENOSPC)", err
    assert not (run / "metrics.jsonl.tmp").exists()
