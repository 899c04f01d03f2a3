"""Issue #13, run pipeline: safe and self-repairing resume, temporaries, identical evaluation paths, failure
isolation, system errors, per-row collapse, amp in the hash, torchrun errors, exit codes. Through the CLI on
tiny data (digits at 8 px, a narrow resnet18, one BYOL epoch)."""
import errno
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from ssl_bench.cli.main import main
from ssl_bench.cli.console import disk_error_line
from ssl_bench.engine import checkpoint
from ssl_bench.errors import UserError
from ssl_bench.evaluation import Evaluation
from ssl_bench.registry import register_evaluation

pytestmark = pytest.mark.slow  # every test here trains or runs a suite (quick loop: -m "not slow")

SUITE = """
name: robust
seeds: [0]
datasets: [{{name: digits, image_size: {size}}}]
backbones: [{{name: resnet18, label: r18, kwargs: {{channels: [8, 8, 8, 8], stem_width: 8}}}}]  # channels_last on
methods: {methods}
pretrain: {{epochs: 1, batch_size: 64, amp: {amp}, log_every: 5, device: {device}}}
evaluations: {evaluations}
output: {{table: false, report: false}}
"""
BYOL = ("[{name: byol, params: {proj_hidden_dim: 32, proj_dim: 16, pred_hidden_dim: 32}, "
        "optim: {base_lr: 1.0, warmup_epochs: 1}}]")
PROBE = "[{name: knn, params: {k: 10}}, robustness_probe]"


@register_evaluation("robustness_probe", override=True)
class ProbeEvaluation(Evaluation):
    """Test only: a fingerprint of the frozen features and a draw from the global RNG, or a failure on demand."""

    name = "robustness_probe"
    defaults = {"mode": "fingerprint"}

    def evaluate(self, ctx):
        if self.params["mode"] == "raise":
            raise ValueError("corrupt image class3/img_7.png: image file is truncated")
        if self.params["mode"] == "interrupt":
            raise KeyboardInterrupt
        feats, _ = ctx.features(ctx.pretrain.name, "test")
        return [{"protocol": "probe", "metric": "feature_sum", "value": float(feats.double().sum())},
                {"protocol": "probe", "metric": "rng", "value": float(torch.rand(()) * 100)}]


def write_suite(path: Path, methods: str = "[random]", evaluations: str = PROBE, amp: str = "off",
                device: str = "cpu", size: int = 8) -> str:
    path.write_text(SUITE.format(methods=methods, evaluations=evaluations, amp=amp, device=device, size=size))
    return str(path)


def records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines() if x.strip()]


def values(out: Path) -> dict[tuple, float]:
    return {(r["run_id"], r["protocol"], r["metric"]): r["value"] for r in records(out)}


def drop_rows(out: Path) -> None:
    """Lose every recorded row: the batch files, which are the ledger (results.jsonl is compiled from them)."""
    for results in out.glob("runs/*/results"):
        shutil.rmtree(results)


class Evil:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One uninterrupted BYOL run (1 epoch): its folder, suite, rows and final weights."""
    root = tmp_path_factory.mktemp("trained")
    # 24 px: there CPU convolutions in channels_last (training) and in the default layout give features ~3e-8
    # apart, which is what evaluating the in-memory encoder instead of final.pt's weights used to show
    suite, out = write_suite(root / "suite.yaml", BYOL, size=24), root / "out"
    assert main(["run", suite, "--out", str(out), "--quiet"]) == 0
    run_dir = next((out / "runs").glob("byol-*"))
    return {"suite": suite, "out": out, "run": run_dir.name, "values": values(out),
            "final": checkpoint.load(run_dir / "final.pt")["model"]}


def resume_copy(trained, tmp_path, break_files) -> tuple[Path, Path]:
    """A copy of the trained folder with its rows dropped and files broken by `break_files(run_dir)`."""
    out = tmp_path / "out"
    shutil.copytree(trained["out"], out)
    drop_rows(out)
    run_dir = out / "runs" / trained["run"]
    break_files(run_dir)
    return out, run_dir


def assert_same_weights(run_dir: Path, trained) -> None:
    got = checkpoint.load(run_dir / "final.pt")["model"]
    assert got.keys() == trained["final"].keys()
    for k, v in trained["final"].items():
        assert torch.equal(got[k], v), k


def test_evaluating_a_reloaded_final_pt_gives_exactly_the_uninterrupted_numbers(trained, tmp_path):
    out, _ = resume_copy(trained, tmp_path, lambda run_dir: None)
    assert main(["run", trained["suite"], "--out", str(out), "--quiet", "--resume"]) == 0
    assert values(out) == trained["values"]  # kNN, a feature fingerprint and an RNG draw: bit-equal
    assert {m for _, p, m in trained["values"] if p == "probe"} == {"feature_sum", "rng"}


def test_code_carrying_checkpoints_are_never_unpickled_and_the_run_retrains(trained, tmp_path, capsys):
    marker = tmp_path / "MARKER"

    def plant(run_dir):
        torch.save({"model": Evil(marker)}, run_dir / "final.pt")
        torch.save({"model": Evil(marker), "optimizer": {}, "epoch": 1, "step": 1}, run_dir / "checkpoint.pt")

    out, run_dir = resume_copy(trained, tmp_path, plant)
    assert main(["run", trained["suite"], "--out", str(out), "--quiet", "--resume"]) == 0
    assert not marker.exists()
    err = capsys.readouterr().err
    for name in ("final.pt", "checkpoint.pt"):
        line = next(x for x in err.splitlines() if x.startswith(f"warning: {run_dir / name}:"))
        assert "refused to unpickle code" in line and f"moved to {name}.bad" in line
        assert (run_dir / f"{name}.bad").exists()
    assert_same_weights(run_dir, trained)  # retrained from scratch, bit-identical
    assert values(out) == trained["values"]


def test_truncated_final_pt_resumes_from_a_good_checkpoint_and_leftover_temporaries_go(trained, tmp_path, capsys):
    def damage(run_dir):
        data = (run_dir / "final.pt").read_bytes()
        (run_dir / "final.pt").write_bytes(data[:len(data) // 2])
        for name in ("checkpoint.pt.tmp4242", "final.pt.tmp7", "run.json.tmp"):
            (run_dir / name).write_bytes(b"x" * 1000)

    out, run_dir = resume_copy(trained, tmp_path, damage)
    metrics = (run_dir / "metrics.jsonl").read_text()
    assert main(["run", trained["suite"], "--out", str(out), "--quiet", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {run_dir / 'final.pt'}: unusable (RuntimeError: PytorchStreamReader" in err
    assert (run_dir / "metrics.jsonl").read_text() == metrics  # continued from checkpoint.pt: no epoch retrained
    assert sorted(p.name for p in run_dir.glob("*.tmp*")) == []
    assert_same_weights(run_dir, trained)
    assert values(out) == trained["values"]


def test_checkpoint_that_does_not_fit_is_set_aside_and_training_starts_clean(trained, tmp_path, capsys):
    def misfit(run_dir):  # loads, and its model weights even fit: the optimizer state is missing
        (run_dir / "final.pt").unlink()
        torch.save({"model": trained["final"], "epoch": 1, "step": 20}, run_dir / "checkpoint.pt")

    out, run_dir = resume_copy(trained, tmp_path, misfit)
    assert main(["run", trained["suite"], "--out", str(out), "--quiet", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {run_dir / 'checkpoint.pt'}: unusable (does not fit this run: KeyError" in err
    assert_same_weights(run_dir, trained)  # the weights it had copied in were reset before training
    assert values(out) == trained["values"]


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated zip"])
def test_unloadable_checkpoint_files_are_set_aside(tmp_path, content, capsys):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    assert checkpoint.load_or_set_aside(path, "starting over") is None
    assert not path.exists() and (tmp_path / "checkpoint.pt.bad").read_bytes() == content
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {path}: unusable (") and err[0].endswith("starting over")
    assert checkpoint.load_or_set_aside(tmp_path / "absent.pt", "x") is None


def test_clean_run_tmp_removes_only_temporaries(tmp_path):
    names = ["checkpoint.pt.tmp12", "final.pt.tmp3", "run.json.tmp", "metrics.jsonl.tmp", "checkpoint.pt", "run.json"]
    for n in names:
        (tmp_path / n).write_text("x")
    assert sorted(p.name for p in checkpoint.clean_run_tmp(tmp_path)) == sorted(names[:4])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "run.json"]


def test_a_failing_evaluation_is_one_failed_row_and_the_suite_goes_on(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.yaml", evaluations="[{name: robustness_probe, params: {mode: raise}}, "
                                                         "{name: knn, params: {k: 10}}]")
    out = tmp_path / "out"
    assert main(["run", suite, "--out", str(out), "--quiet"]) == 3
    recs = {r["protocol"]: r for r in records(out)}
    bad = recs["robustness_probe"]
    assert bad["status"] == "failed" and bad["value"] is None
    assert bad["error"] == "ValueError: corrupt image class3/img_7.png: image file is truncated"
    assert recs["knn"]["status"] == "ok"  # the next evaluation still ran
    err = capsys.readouterr().err.splitlines()
    assert sum("warning: evaluation robustness_probe failed (ValueError: corrupt image" in x for x in err) == 1
    assert err[-1].startswith("suite finished with problems: 1 row(s) failed, 0 collapsed")


def test_interrupt_inside_an_evaluation_still_stops_the_suite(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.yaml", evaluations="[{name: robustness_probe, params: {mode: interrupt}}]")
    out = tmp_path / "out"
    assert main(["run", suite, "--out", str(out), "--quiet"]) == 130
    assert not (out / "results.jsonl").exists() or records(out) == []
    assert capsys.readouterr().err.strip().endswith("interrupted; continue with --resume")


def test_collapse_marks_only_rows_that_measure_the_frozen_encoder(tmp_path, monkeypatch):
    import ssl_bench.run.stages as pr

    monkeypatch.setattr(pr, "collapse_score", lambda feats: 0.0)  # as if the encoder had collapsed
    evals = ("[{name: knn, params: {k: 10}}, {name: semi_supervised, params: {fractions: [0.1], lrs: [0.05], "
             "epochs: [1], batch_size: 64}}, {name: transfer, params: {datasets: [digits], variant: finetune, "
             "lrs: [0.05], weight_decays: [0], epochs: 1, batch_size: 512}}]")
    out = tmp_path / "out"
    assert main(["run", write_suite(tmp_path / "s.yaml", evaluations=evals), "--out", str(out), "--quiet"]) == 3
    status = {(r["protocol"], r["metric"]): (r["status"], r["extra"]["uses_frozen_encoder"]) for r in records(out)}
    assert status[("knn", "top1")] == ("collapsed", True)
    for key in [("semi_supervised", "top1"), ("transfer_finetune", "top1")]:
        assert status[key] == ("ok", False), key


def test_full_or_read_only_output_disk_is_one_line(tmp_path, monkeypatch, capsys):
    real = os.replace

    def read_only(src, dst, *a, **k):
        if Path(dst).parent.name == "results":  # the first result write: a batch file
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(src), None, str(dst))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", read_only)
    out = tmp_path / "out"
    suite = write_suite(tmp_path / "s.yaml", evaluations="[{name: knn, params: {k: 10}}]")
    assert main(["run", suite, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    (run,) = [p.name for p in (out / "runs").iterdir()]
    assert len(err) == 1 and re.fullmatch(re.escape(f"error: cannot write {out / 'runs' / run / 'results'}/") +
                                          r"knn-[0-9a-f]{8}\.json: \[Errno 30\] Read-only file system \(EROFS\)",
                                          err[0]), err


def test_save_atomic_raises_a_plain_oserror_naming_the_path(tmp_path, monkeypatch):
    def full(obj, f, *a, **k):  # what torch.save lets through from a file object on a full disk
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    target = tmp_path / "checkpoint.pt"
    with pytest.raises(OSError) as info:
        checkpoint.save_atomic({"x": 1}, target)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []  # no checkpoint-sized temporary left behind
    assert disk_error_line(info.value) == \
        f"error: cannot write {target}: [Errno 28] No space left on device (ENOSPC)"


def test_amp_auto_is_resolved_before_the_hash(tmp_path, monkeypatch):
    import ssl_bench.engine.device as device
    from ssl_bench.config.run_spec import expand
    from ssl_bench.config.suite import load_suite

    auto = load_suite(write_suite(tmp_path / "auto.yaml", BYOL, amp="auto"))
    off = load_suite(write_suite(tmp_path / "off.yaml", BYOL, amp="off"))
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    plain = expand(auto)[0]
    assert plain.config()["amp"] == "off" and plain.run_id == expand(off)[0].run_id
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    bf16 = expand(auto)[0]
    assert bf16.config()["amp"] == "bf16" and bf16.run_id != plain.run_id  # another precision: another run
    assert expand(auto, amp="off")[0].run_id == plain.run_id


@pytest.mark.parametrize("rank,lines", [("0", 1), ("1", 0)])
def test_under_torchrun_only_rank_0_prints_user_errors(tmp_path, monkeypatch, capsys, rank, lines):
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    suite = write_suite(tmp_path / "s.yaml", device="cuda:1")
    assert main(["run", suite, "--out", str(tmp_path / "out"), "--quiet"]) == 2  # every rank exits 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == lines
    if lines:
        assert "pretrain.device: bad value 'cuda:1' under torchrun" in err[0] and "CUDA_VISIBLE_DEVICES" in err[0]
    assert not (tmp_path / "out").exists()


def test_resolve_device_refuses_a_pinned_gpu_under_torchrun(monkeypatch):
    from ssl_bench.engine.device import resolve_device

    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(UserError, match="use cuda or auto|allowed: cuda or auto"):
        resolve_device("cuda:0")
    assert resolve_device("cpu").type == "cpu"
