"""Experiment loggers (issue 27 item 3): a run killed mid-epoch and resumed through the CLI leaves one
TensorBoard log, one W&B run (offline) and one CSV log in which every step appears once; the values read back
(TensorBoard's EventAccumulator, the offline run's .wandb records, the CSV) equal the run's own metrics log and
results, and lr / tau equal the schedules' formulas written here."""
from __future__ import annotations

import csv
import math
import os
import struct
from pathlib import Path

import pytest

from conftest import metrics_rows, results_rows
from ssl_bench.cli.main import main

LOGGED_SUITE = """
name: logged
datasets: [{name: digits, image_size: 8}]
backbones: [{name: resnet18, label: r18, kwargs: {channels: [4, 8, 8, 8], stem_width: 4}}]
methods:
  - name: byol
    params: {proj_hidden_dim: 32, proj_dim: 16, pred_hidden_dim: 32}
    optim: {base_lr: 1.0, warmup_epochs: 1}
pretrain: {epochs: 3, batch_size: 256, amp: off, log_every: 1, knn_monitor: {every: 1, k: 5}}
evaluations: [{name: knn, params: {k: 5}}]
output: {table: false, report: false, loggers: [tensorboard, wandb, csv]}
"""


def test_unknown_logger_is_one_line_naming_the_field(tiny_suite, capsys):
    assert main(["validate", tiny_suite(), "output.loggers=[tensorboard, mlflow]"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: output.loggers[1]: bad value 'mlflow'; allowed: one of csv, tensorboard, wandb")


def test_a_logger_whose_package_is_missing_names_the_extra(tiny_suite, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert main(["validate", tiny_suite(), "output.loggers=[csv, tensorboard]"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: output.loggers[1]: logger 'tensorboard' needs the Python package 'tensorboard', which is "
                   "not installed; allowed: pip install \"ssl-bench[tensorboard]\", or leave 'tensorboard' out")


def test_logger_folders_never_write_through_a_planted_symlink(tmp_path):
    from ssl_bench.engine.loggers import RunLoggers

    outside = tmp_path / "outside"
    outside.mkdir()
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / "csv").symlink_to(outside, target_is_directory=True)
    loggers = RunLoggers(["csv"], run_dir, "r", "s", {})
    loggers.begin(0)
    loggers.log({"train/loss": 1.5}, 1)
    loggers.close()
    assert list(outside.iterdir()) == []
    assert not (run_dir / "csv").is_symlink() and (run_dir / "csv" / "steps.csv").read_text().splitlines() == \
        ["step,key,value", "1,train/loss,1.5"]


def wandb_records(path: Path) -> list:
    """The records of an offline run's .wandb file: W&B's LevelDB-style log (a 7-byte ':W&B' header, 32 KiB
    blocks of chunks with a 7-byte header: crc32 uint32, length uint16, type uint8 full/first/middle/last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, out, buf = 7, [], b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
            buf = b""
    return out


def wandb_history(run_dir: Path) -> tuple[set[str], list[tuple[int, dict]], dict]:
    """(W&B run ids, [(step, values)] over every attempt's offline run in order, the merged summary)."""
    import json

    ids, history, summary = set(), [], {}

    def key(item) -> str:  # a key is sent as `key` or as the one-element `nested_key`
        return item.key or "/".join(item.nested_key)
    for path in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):  # names start with the time
        for r in wandb_records(path):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                ids.add(r.run.run_id)
            elif kind == "history":
                items = {key(i): json.loads(i.value_json) for i in r.history.item if not key(i).startswith("_")}
                history.append((r.history.step.num, items))
            elif kind == "summary":
                summary.update({key(i): json.loads(i.value_json) for i in r.summary.update})
    return ids, history, summary


@pytest.mark.slow
def test_a_resumed_run_continues_each_logger_without_repeating_a_step(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import ssl_bench.engine.trainer as trainer
    from ssl_bench.create import create_dataset

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-elsewhere"))  # the run's folder wins over this
    suite, out = tmp_path / "logged.yaml", tmp_path / "out"
    suite.write_text(LOGGED_SUITE)
    per_epoch = len(create_dataset("digits").pretrain_images) // 256
    total = 3 * per_epoch
    real_step, calls = trainer.model_step, []

    def dies_in_the_second_epoch(*args, **kwargs):  # after steps per_epoch + 1 and + 2 were logged
        if len(calls) == per_epoch + 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer, "model_step", dies_in_the_second_epoch)
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 130
    monkeypatch.setattr(trainer, "model_step", real_step)
    assert main(["run", str(suite), "--out", str(out), "--quiet", "--resume"]) == 0
    (run_dir,) = (out / "runs").iterdir()
    epochs = metrics_rows(run_dir)
    result = next(r for r in results_rows(out) if r["metric"] == "top1")
    steps = list(range(1, total + 1))

    def lr(s: int) -> float:  # 1.0 * 256 / 256 peak, one warmup epoch, cosine to 0 (0-based step s - 1)
        k = s - 1
        return k / per_epoch if k < per_epoch else 0.5 * (1 + math.cos(math.pi * (k - per_epoch) / (total - per_epoch)))

    def tau(s: int) -> float:  # BYOL: 1 - (1 - 0.99) (cos(pi k / K) + 1) / 2 after step k = s - 1
        return 1 - (1 - 0.99) * (math.cos(math.pi * (s - 1) / total) + 1) / 2

    # TensorBoard: one log dir, each step once (the dead attempt's steps past the checkpoint purged)
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == steps
    assert [e.value for e in acc.Scalars("train/lr")] == pytest.approx([lr(s) for s in steps], abs=1e-6)
    assert [e.value for e in acc.Scalars("train/tau")] == pytest.approx([tau(s) for s in steps], abs=1e-6)
    assert all(e.value > 0 for e in acc.Scalars("train/images_per_s"))
    for tag, key in (("epoch/loss", "loss"), ("monitor/knn_top1", "knn_top1")):  # as metrics.jsonl says
        assert [e.step for e in acc.Scalars(tag)] == [r["step"] for r in epochs]
        assert [e.value for e in acc.Scalars(tag)] == pytest.approx([r[key] for r in epochs], rel=1e-6)
    assert [e.value for e in acc.Scalars("results/knn/digits/top1")] == pytest.approx([result["value"]])

    # W&B (offline): one run id over both attempts, steps strictly increasing, the results in the summary
    ids, history, summary = wandb_history(run_dir)
    assert len(ids) == 1 and len(list((run_dir / "wandb").glob("offline-run-*"))) == 2
    logged = [s for s, items in history if "train/loss" in items]
    assert logged == steps
    assert [s for s, _ in history] == sorted({s for s, _ in history})
    assert {s: items["monitor/knn_top1"] for s, items in history if "monitor/knn_top1" in items} == \
        pytest.approx({r["step"]: r["knn_top1"] for r in epochs})
    assert summary["results/knn/digits/top1"] == pytest.approx(result["value"])
    assert not (tmp_path / "wandb-elsewhere").exists()

    # CSV: each (step, key) once; the results row as in results.jsonl
    rows = list(csv.DictReader((run_dir / "csv" / "steps.csv").read_text().splitlines()))
    pairs = [(int(r["step"]), r["key"]) for r in rows]
    assert len(pairs) == len(set(pairs)) and [s for s, k in pairs if k == "train/loss"] == steps
    res = list(csv.DictReader((run_dir / "csv" / "results.csv").read_text().splitlines()))
    assert [(r["metric"], float(r["value"])) for r in res if r["metric"] == "top1"] == [("top1", result["value"])]
    assert os.path.isdir(run_dir / "tensorboard") and not (run_dir / "tensorboard").is_symlink()
