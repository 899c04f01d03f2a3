"""Issue #26 (items 0, 1, 4, 5 and part of 6) and #27 item 1, through the CLI on tiny data: which folders a run
may adopt or continue, writes that never follow a symlink, --overwrite under a live worker, bogus claims, a
status that never crashes, two suites in one folder, and the README's command run twice."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from conftest import TINY_SUITE, batch_files, results_rows
from ssl_bench.cli.main import main
from ssl_bench.run.outdir import MARKER

pytestmark = pytest.mark.slow  # they run suites (a finished one is shared: conftest.finished_tiny)


BYOL_ENTRY = ("  - name: byol\n    params: {proj_hidden_dim: 32, proj_dim: 16, pred_hidden_dim: 32}\n"
              "    optim: {base_lr: 1.0, warmup_epochs: 1}\n")


def random_only(epochs: int) -> str:
    """The tiny suite (same name) with the random baseline alone."""
    text = TINY_SUITE.format(epochs=epochs)
    assert BYOL_ENTRY in text
    return text.replace(BYOL_ENTRY, "")


def _copy(finished_tiny, tmp_path) -> tuple[str, Path]:
    suite, out = finished_tiny
    dest = tmp_path / "out"
    shutil.copytree(out, dest, symlinks=True)
    return str(suite), dest


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 0. never adopt a folder ssl-bench did not create ---------------------------------------------------------

def _tensorboard_project(folder: Path) -> None:
    """A user's project: TensorBoard's default runs/<run>/, a diary in logs/, sources."""
    (folder / "runs" / "Dec02_10-00-00_host").mkdir(parents=True)
    (folder / "runs" / "Dec02_10-00-00_host" / "events.out.tfevents.1.host").write_bytes(b"\x00tb events")
    (folder / "logs").mkdir()
    (folder / "logs" / "diary.txt").write_text("day 1: started the thesis\n")
    (folder / "src").mkdir()
    (folder / "src" / "main.py").write_text("print('mine')\n")


def test_a_tensorboard_runs_folder_is_not_ssl_bench_results(finished_tiny, tmp_path, capsys):
    suite = str(finished_tiny[0])
    project = tmp_path / "project"
    project.mkdir()
    _tensorboard_project(project)
    before = _tree(project)
    for flags in ([], ["--resume"], ["--resume", "--adopt"], ["--overwrite"]):
        assert main(["run", suite, "--out", str(project), "--quiet", *flags]) == 2
        line = _err_line(capsys)
        assert ("not empty and was not created by ssl-bench" in line or "--overwrite refused" in line), line
        assert _tree(project) == before and not (project / MARKER).exists()


def test_adopting_old_results_needs_adopt_and_overwrite_then_removes_only_what_ssl_bench_wrote(
        finished_tiny, tmp_path, capsys):
    suite, out = _copy(finished_tiny, tmp_path)
    for results in out.glob("runs/*/results"):  # an older ssl-bench: results.jsonl is the ledger, no marker
        shutil.rmtree(results)
    (out / "results.view.json").unlink()
    (out / MARKER).unlink()
    _tensorboard_project(out)
    rows = results_rows(out)
    for flags in ([], ["--resume"]):
        assert main(["run", suite, "--out", str(out), "--quiet", *flags]) == 2
        assert "holds ssl-bench results but no .ssl-bench marker" in _err_line(capsys)
        assert not (out / MARKER).exists()
    assert main(["run", suite, "--out", str(out), "--quiet", "--resume", "--adopt"]) == 0
    assert "[run] " not in capsys.readouterr().out  # adopted and migrated: nothing recomputed
    marker = json.loads((out / MARKER).read_text())
    assert marker["adopted"] and {"runs/Dec02_10-00-00_host", "logs/diary.txt"} <= set(marker["foreign"])
    assert sorted(map(json.dumps, results_rows(out))) == sorted(map(json.dumps, rows))
    (out / "runs" / "Dec03_tb_later").mkdir()  # TensorBoard keeps writing runs/ after the adoption
    (out / "runs" / "Dec03_tb_later" / "events.out.tfevents.2.host").write_bytes(b"\x00")
    assert main(["run", suite, "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert "--overwrite: removed" in capsys.readouterr().out
    assert (out / "runs" / "Dec02_10-00-00_host" / "events.out.tfevents.1.host").read_bytes() == b"\x00tb events"
    assert (out / "runs" / "Dec03_tb_later" / "events.out.tfevents.2.host").exists()
    assert (out / "logs" / "diary.txt").read_text() == "day 1: started the thesis\n"
    assert (out / "src" / "main.py").exists()
    assert len(batch_files(out)) == 4  # the suite ran again from scratch beside them


# --- 1. writes never follow a symlink -------------------------------------------------------------------------

def test_no_write_follows_a_symlink_planted_in_the_output_folder(finished_tiny, tmp_path, capsys):
    suite, out = _copy(finished_tiny, tmp_path)
    precious = tmp_path / "precious"
    precious.mkdir()
    byol = next((out / "runs").glob("byol-*"))
    shutil.rmtree(byol / "results")  # byol trains again: its checkpoints, metrics and run.json are written
    (byol / "final.pt").unlink()
    (byol / "checkpoint.pt").unlink()
    pid = os.getpid()  # in-process CLI: the temporaries it would name are predictable
    names = ["suite_timing.json", "matrix.json", "suite.yaml", "results.jsonl", "results.view.json",
             f"suite.yaml.tmp{pid}", f"matrix.json.tmp{pid}", f"results.jsonl.tmp{pid}", "claims/takeovers.log",
             f"runs/{byol.name}/metrics.jsonl", f"runs/{byol.name}/run.json", f"runs/{byol.name}/checkpoint.pt",
             f"runs/{byol.name}/final.pt", f"runs/{byol.name}/run.json.tmp{pid}"]
    (out / "claims").mkdir(exist_ok=True)
    for i, name in enumerate(names):
        target = precious / f"file{i}"
        target.write_text(f"user file {i}\n")
        (out / name).unlink(missing_ok=True)
        (out / name).symlink_to(target)
    for folder in ("results", "predictions"):  # folders planted as links out of OUT
        shutil.rmtree(byol / folder, ignore_errors=True)
        (precious / folder).mkdir()
        (byol / folder).symlink_to(precious / folder, target_is_directory=True)
    # a claim of a dead worker whose host would add a line of its own to takeovers.log
    (out / "claims" / f"{byol.name}.json").write_text(json.dumps(
        {"host": "evil\n2026-01-01 injected line", "pid": 1, "token": "t", "started": 0, "heartbeat": 0}))
    assert main(["run", suite, "--out", str(out), "--quiet", "--resume"]) == 0
    assert main(["report", str(out)]) == 0  # written once, then again through planted links
    for name in ("report.html", "plots/training.png"):
        (out / name).unlink()
        target = precious / name.replace("/", "_")
        target.write_text("user file\n")
        (out / name).symlink_to(target)
    assert main(["report", str(out)]) == 0
    for i in range(len(names)):
        assert (precious / f"file{i}").read_text() == f"user file {i}\n", names[i]
    assert (precious / "report.html").read_text() == (precious / "plots_training.png").read_text() == "user file\n"
    assert not any((precious / "results").iterdir()) and not any((precious / "predictions").iterdir())
    assert len(batch_files(out)) == 4
    assert not (out / "report.html").is_symlink() and not (out / "suite.yaml").is_symlink()
    log = (out / "claims" / "takeovers.log").read_text().splitlines()
    assert len(log) == 1 and "evil\\n2026-01-01 injected line:1" in log[0]  # escaped: one line
    capsys.readouterr()


def test_the_unreadable_side_file_is_never_appended_through_a_link(finished_tiny, tmp_path, capsys):
    suite, out = _copy(finished_tiny, tmp_path)
    for results in out.glob("runs/*/results"):  # a legacy folder with a torn line: migration sets it aside
        shutil.rmtree(results)
    (out / "results.view.json").unlink()
    (out / MARKER).write_text(json.dumps({"created_by": "ssl-bench"}))
    with open(out / "results.jsonl", "a") as f:
        f.write('{"torn": \n')
    rc = tmp_path / "bashrc"
    rc.write_text("export PATH=/usr/bin\n")
    (out / "results.unreadable.jsonl").symlink_to(rc)
    assert main(["run", suite, "--out", str(out), "--quiet", "--resume"]) == 0
    assert rc.read_text() == "export PATH=/usr/bin\n"
    assert (out / "results.unreadable.jsonl").read_text() == '{"torn": \n'
    capsys.readouterr()


# --- 4. --overwrite under a live worker; 5. bogus claims and a status that never crashes ----------------------

def _claim(out: Path, run_id: str, **fields) -> Path:
    (out / "claims").mkdir(exist_ok=True)
    path = out / "claims" / f"{run_id}.json"
    holder = {"host": "node7", "pid": 4242, "token": "t", "started": time.time() - 60, "heartbeat": time.time(),
              **fields}
    path.write_text(json.dumps(holder).replace('"HEARTBEAT"', "1e400"))
    return path


def test_overwrite_is_refused_while_a_worker_holds_a_run(finished_tiny, tmp_path, capsys):
    suite, out = _copy(finished_tiny, tmp_path)
    run_id = next((out / "runs").glob("byol-*")).name
    _claim(out, run_id, heartbeat=time.time() - 3)
    before = _tree(out)
    assert main(["run", suite, "--out", str(out), "--quiet", "--overwrite"]) == 2
    line = _err_line(capsys)
    assert re.search(rf"--overwrite refused: run {run_id} is held by a live worker node7:4242 \(heartbeat \d+ s "
                     r"ago\); allowed: wait for it", line), line
    assert _tree(out) == before  # nothing removed


@pytest.mark.parametrize("bogus,why", [({"heartbeat": time.time() + 10 ** 6}, "heartbeat in the future"),
                                       ({"heartbeat": "HEARTBEAT"}, "heartbeat is not a finite number"),
                                       ({"started": "yesterday"}, "started is not a finite number")],
                         ids=["future", "1e400", "started string"])
def test_a_bogus_claim_is_stale_and_status_shows_it(finished_tiny, tmp_path, capsys, bogus, why):
    suite, out = _copy(finished_tiny, tmp_path)
    random = next((out / "runs").glob("random-*"))
    shutil.rmtree(random / "results")  # the random run must be evaluated again, and a bogus claim holds it
    _claim(out, random.name, **bogus)
    assert main(["status", str(out)]) == 0
    assert "1 done, 0 running, 0 failed, 1 pending" in capsys.readouterr().out
    assert main(["run", suite, "--out", str(out), "--quiet", "--resume"]) == 0  # no wait: taken over at once
    assert f"took over {random.name} from node7:4242 ({why})" in capsys.readouterr().err


@pytest.mark.parametrize("break_it,expected", [
    (lambda out: (out / "matrix.json").write_text('{"runs": 3, "evaluations": []}'), "not a matrix ssl-bench wrote"),
    (lambda out: (out / "matrix.json").write_text('[1, 2]'), "not a matrix ssl-bench wrote (not an object)"),
    (lambda out: (out / "matrix.json").write_text('{"runs": [{"run_id": "../x"}], "evaluations": []}'),
     "runs[0] has no safe run_id"),
    (lambda out: (shutil.rmtree(out / "claims"), (out / "claims").write_text("x")), "claims: is not a folder"),
], ids=["runs not a list", "a list", "unsafe run id", "claims a file"])
def test_status_of_a_damaged_folder_is_one_line(finished_tiny, tmp_path, capsys, break_it, expected):
    _, out = _copy(finished_tiny, tmp_path)
    (out / "claims").mkdir(exist_ok=True)
    break_it(out)
    before = _tree(out)
    assert main(["status", str(out)]) == 2
    assert expected in _err_line(capsys)
    assert _tree(out) == before


def test_a_run_into_a_folder_with_claims_as_a_file_is_one_line(finished_tiny, tmp_path, capsys):
    suite, out = _copy(finished_tiny, tmp_path)
    shutil.rmtree(out / "claims", ignore_errors=True)
    (out / "claims").write_text("not a folder")
    assert main(["run", suite, "--out", str(out), "--quiet", "--resume"]) == 2
    assert f"{out / 'claims'} is a file; allowed: a folder" in _err_line(capsys)


def test_an_immutable_output_folder_is_one_line(finished_tiny, tmp_path, monkeypatch, capsys):
    suite, out = _copy(finished_tiny, tmp_path)
    shutil.rmtree(next((out / "runs").glob("random-*")) / "results")
    real = os.open

    def immutable(path, flags, *a, **k):  # chattr +i: creating a file raises EPERM (root cannot chattr here)
        if flags & os.O_CREAT and Path(path).parent.name == "results":
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(path))
        return real(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", immutable)
    assert main(["run", suite, "--out", str(out), "--quiet", "--resume"]) == 2
    line = _err_line(capsys)
    assert line.startswith(f"error: cannot write {out / 'runs'}") and "(EPERM)" in line, line
    assert not list(out.glob("runs/*/results/*.tmp*"))  # nothing half-written


# --- 6 (part). two suites in one folder; #27 item 1: the same command twice -----------------------------------

def test_a_second_suite_is_refused_and_status_tells_an_extended_suite_apart(finished_tiny, tmp_path, capsys):
    suite, out = _copy(finished_tiny, tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text(TINY_SUITE.format(epochs=2).replace("name: tiny", "name: other"))
    before = _tree(out)
    assert main(["run", str(other), "--out", str(out), "--quiet", "--resume"]) == 2
    line = _err_line(capsys)
    assert "holds the results of suite 'tiny' (sha256 " in line and "this is suite 'other' (sha256 " in line
    assert _tree(out) == before
    smaller = tmp_path / "tiny_random_only.yaml"  # the same suite, edited: only the random baseline now
    smaller.write_text(random_only(epochs=2))
    assert main(["run", str(smaller), "--out", str(out), "--quiet", "--resume"]) == 0
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 runs: 1 done" in printed
    assert "and 1 run folder(s) with results outside suite tiny's matrix" in printed and "byol-" in printed


def test_the_same_command_twice_continues_the_default_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "quick.yaml"  # like suites/quickstart.yaml: no --out, the suite's default folder
    suite.write_text(random_only(epochs=1))
    assert main(["run", str(suite), "--quiet"]) == 0
    first = capsys.readouterr().out
    assert main(["run", str(suite), "--quiet"]) == 0
    again = capsys.readouterr().out
    assert "[skip]" in again and "| random" in again and "| random" in first  # reused, and the table printed
    suite.write_text(suite.read_text().replace("k: 10", "k: 5"))  # another suite file: today's refusal stays
    assert main(["run", str(suite), "--quiet"]) == 2
    assert "folder already holds results; allowed: --resume" in _err_line(capsys)
