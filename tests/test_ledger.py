"""The output folder's ledger through the CLI: what --overwrite may delete, resume that repairs the results file,
strict JSON, and rows written exactly once."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from conftest import TINY_SUITE, batch_files, edit_batch, results_rows as _rows, row_key as _key
from ssl_bench.cli.main import main
from ssl_bench.run.outdir import MARKER
from ssl_bench.run.ledger import UNREADABLE_FILE, ResultsStore

pytestmark = pytest.mark.slow  # every test here trains or runs a suite (quick loop: -m "not slow")


@pytest.fixture
def finished(finished_tiny) -> tuple[Path, Path]:
    return finished_tiny


def _copy(finished, tmp_path) -> tuple[str, Path]:
    suite, out = finished
    dest = tmp_path / "out"
    shutil.copytree(out, dest)
    return str(suite), dest


# --- what --overwrite may delete -------------------------------------------------------------------------------

def test_overwrite_refuses_a_folder_ssl_bench_did_not_create(finished, tmp_path, capsys):
    suite, _ = finished
    thesis = tmp_path / "thesis"
    (thesis / "src").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("\\documentclass{article}")
    (thesis / "src" / "main.py").write_text("print(1)")
    assert main(["run", str(suite), "--out", str(thesis), "--overwrite", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite refused" in err[0] and MARKER in err[0] and str(thesis) in err[0]
    assert sorted(p.name for p in thesis.rglob("*")) == ["main.py", "src", "thesis.tex"]
    # nor does a plain run write its outputs among the user's files
    assert main(["run", str(suite), "--out", str(thesis), "--quiet"]) == 2
    assert "not empty and was not created by ssl-bench" in capsys.readouterr().err
    assert sorted(p.name for p in thesis.rglob("*")) == ["main.py", "src", "thesis.tex"]


def test_suite_output_dir_gets_the_same_protection(tmp_path, capsys):
    target = tmp_path / "somewhere"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    suite = tmp_path / "s.yaml"
    suite.write_text(TINY_SUITE.format(epochs=1).replace("output: {table: true, report: false}",
                                                         f"output: {{dir: {target}, table: false, report: false}}"))
    assert main(["run", str(suite), "--overwrite", "--quiet"]) == 2
    assert "--overwrite refused" in capsys.readouterr().err
    assert (target / "keep.txt").read_text() == "mine" and not (target / "runs").exists()


def test_overwrite_removes_only_its_own_entries(finished, tmp_path, capsys):
    suite, out = _copy(finished, tmp_path)
    (out / "notes.txt").write_text("my notes")
    (out / "runs" / "stale-run").mkdir()
    assert main(["run", suite, "--out", str(out), "--overwrite", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "--overwrite: removed results.jsonl, runs" in printed
    assert (out / "notes.txt").read_text() == "my notes"  # not ours: kept
    assert not (out / "runs" / "stale-run").exists()  # inside runs/, which is ours
    assert (out / MARKER).is_file() and len(_rows(out)) == len(_rows(finished[1]))


def test_a_run_folder_that_escapes_through_a_symlink_is_refused(finished, tmp_path, capsys):
    suite, out = _copy(finished, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(out / "runs")
    (out / "runs").symlink_to(elsewhere, target_is_directory=True)
    assert main(["run", suite, "--out", str(out), "--resume", "--quiet"]) == 2
    assert "resolves outside the output folder" in capsys.readouterr().err
    assert not any(elsewhere.iterdir())


# --- resume that repairs -------------------------------------------------------------------------------------------

def _batch_of(out: Path, method: str, protocol: str) -> Path:
    return next(p for p in batch_files(out) if p.parent.parent.name.startswith(method + "-")
                and p.name.startswith(protocol + "-"))


def test_garbled_batch_is_set_aside_and_only_its_evaluation_is_recomputed(finished, tmp_path, capsys):
    suite, out = _copy(finished, tmp_path)
    rows = _rows(out)
    torn = _batch_of(out, "byol", "knn")
    garbage = torn.read_text()[:200]  # a torn write (or a hand edit) in the middle of the file
    torn.write_text(garbage)
    assert main(["table", str(out)]) == 0  # tables read past it with a warning
    assert "1 batch file(s) unreadable or invalid" in capsys.readouterr().err
    assert main(["run", suite, "--out", str(out), "--resume", "--quiet"]) == 0
    captured = capsys.readouterr()
    aside = [p for p in torn.parent.iterdir() if p.name.startswith(torn.name + ".unreadable-")]
    assert len(aside) == 1 and aside[0].read_text() == garbage  # set aside, never deleted
    assert f"warning: {torn}: unreadable batch moved to {aside[0].name}; its evaluation is recomputed" in captured.err
    assert captured.out.count("[run] ") == 1  # only the run whose batch was lost
    assert Counter(map(_key, _rows(out))) == Counter(map(_key, rows))  # nothing lost, nothing twice
    again = {_key(r): r["value"] for r in _rows(out)}
    assert all(again[_key(r)] == pytest.approx(r["value"], abs=1e-9) for r in rows)


def _make_legacy(out: Path) -> None:
    """The folder as an ssl-bench before batch files left it: results.jsonl is the ledger, an old marker."""
    for results in out.glob("runs/*/results"):
        shutil.rmtree(results)
    (out / "results.view.json").unlink()
    (out / MARKER).write_text(json.dumps({"created_by": "ssl-bench", "version": "0.1.0"}))


def test_a_legacy_folder_is_migrated_on_resume_and_its_garbled_line_set_aside(finished, tmp_path, capsys):
    suite, out = _copy(finished, tmp_path)
    _make_legacy(out)
    lines = (out / "results.jsonl").read_text().splitlines()
    garbage = '{"run_id": "x", "value": 7'  # a torn write in the middle
    (out / "results.jsonl").write_text("\n".join(lines[:2] + [garbage] + lines[2:]) + "\n")
    assert main(["table", str(out)]) == 0  # tables read a legacy folder as it is, past the torn line
    assert main(["run", suite, "--out", str(out), "--resume", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"moved 1 unreadable line(s) (3) to {out / UNREADABLE_FILE}" in captured.err
    assert (out / UNREADABLE_FILE).read_text() == garbage + "\n"
    assert "[run] " not in captured.out  # every evaluation was done: nothing recomputed
    assert len(batch_files(out)) == 4
    assert sorted(map(_key, _rows(out))) == sorted(_key(json.loads(x)) for x in lines)  # nothing lost


def test_a_lost_row_recomputes_its_evaluation_without_duplicates(finished, tmp_path, capsys):
    suite, out = _copy(finished, tmp_path)
    rows = _rows(out)
    edit_batch(_batch_of(out, "byol", "knn"), lambda b: b["rows"].pop())  # the top5 row is lost
    assert main(["run", suite, "--out", str(out), "--resume", "--quiet"]) == 0
    assert "invalid batch (1 of its 2 rows) moved to" in capsys.readouterr().err
    after = _rows(out)
    assert Counter(map(_key, after)) == Counter(map(_key, rows))  # the lost row is back, nothing twice
    again = {_key(r): r["value"] for r in after}
    assert all(again[_key(r)] == pytest.approx(r["value"], abs=1e-9) for r in rows)


def test_failed_rows_are_retried_on_resume(finished, tmp_path):
    suite, out = _copy(finished, tmp_path)
    rows = _rows(out)

    def fail(batch):
        batch["rows"] = [{**batch["rows"][0], "metric": None, "value": None, "status": "failed", "error": "transient",
                          "batch_rows": 1}]
    edit_batch(_batch_of(out, "byol", "knn"), fail)
    assert main(["run", suite, "--out", str(out), "--resume", "--quiet"]) == 0
    after = _rows(out)
    assert Counter(map(_key, after)) == Counter(map(_key, rows))
    assert all(r["status"] == "ok" for r in after)


def test_leftover_temp_files_are_removed_on_resume(finished, tmp_path):
    suite, out = _copy(finished, tmp_path)
    tmps = [out / "results.jsonl.tmp99999", _batch_of(out, "random", "knn").with_suffix(".json.tmp4242")]
    for tmp in tmps:
        tmp.write_text("half a file")
    assert main(["run", suite, "--out", str(out), "--resume", "--quiet"]) == 0
    assert not any(tmp.exists() for tmp in tmps)


# --- strict JSON and the store's batches -------------------------------------------------------------------------

def _strict_loads(line: str) -> dict:
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(line, parse_constant=refuse)


ROW = {"run_id": "r", "eval_key": "k", "method": "m", "backbone": "b", "pretrain_dataset": "d", "seed": 0,
       "protocol": "p", "eval_dataset": "d", "metric": "top1", "value": 1.0, "status": "ok"}


def test_results_file_is_strict_json(finished, tmp_path):
    _, out = finished
    for line in (out / "results.jsonl").read_text().splitlines():
        _strict_loads(line)
    store = ResultsStore(tmp_path)
    store.append([{**ROW, "metric": "top1", "value": float("nan"), "extra": {"curve": [1.0, float("inf")]}}])
    (row,) = [_strict_loads(x) for x in store.path.read_text().splitlines()]
    assert row["value"] is None and row["status"] == "failed" and "nan" in row["error"]
    assert row["extra"]["curve"] == [1.0, None]


def test_store_writes_a_key_once_and_replaces_incomplete_batches(tmp_path):
    store = ResultsStore(tmp_path)
    two = [{**ROW, "metric": m} for m in ("top1", "top5")]
    assert store.append(two) == 2
    assert store.append(two) == 0  # complete already (another worker wrote it): not written twice
    assert store.done_keys() == {("r", "k")}
    (batch,) = batch_files(tmp_path)
    edit_batch(batch, lambda b: b["rows"].pop())  # the top5 row is lost
    assert store.done_keys() == set()
    assert store.append(two) == 2
    store.refresh_view()
    assert [json.loads(x)["metric"] for x in store.path.read_text().splitlines()] == ["top1", "top5"]


# --- a batch is done only when each of its rows is valid (issue 26 item 6) -------------------------------------

@pytest.mark.parametrize("tamper,why", [
    (lambda row: row.pop("value"), "a row without value"),
    (lambda row: row.update(value="NaN"), "top1 value 'NaN'"),
    (lambda row: row.update(protocol="knn_v2"), "protocol 'knn_v2' (evaluation declares knn)"),
], ids=["no value", "NaN string", "unknown protocol"])
def test_a_tampered_row_makes_its_batch_incomplete_and_resume_recomputes_it(finished, tmp_path, capsys, tamper, why):
    suite, out = _copy(finished, tmp_path)
    rows = _rows(out)
    path = _batch_of(out, "byol", "knn")
    edit_batch(path, lambda b: tamper(b["rows"][0]))
    assert main(["status", str(out)]) == 0
    assert "1 done, 0 running, 0 failed, 1 pending" in capsys.readouterr().out
    assert main(["run", suite, "--out", str(out), "--resume", "--quiet"]) == 0
    assert f"warning: {path}: invalid batch ({why}) moved to" in capsys.readouterr().err
    after = _rows(out)
    assert Counter(map(_key, after)) == Counter(map(_key, rows))
    again = {_key(r): r["value"] for r in after}
    assert all(again[_key(r)] == pytest.approx(r["value"], abs=1e-9) for r in rows)


# --- a rebuild of results.jsonl paused past the lock's staleness (issue 26 item 4) -------------------------------

def test_a_paused_rebuild_whose_lock_was_broken_never_publishes_its_snapshot(tmp_path, monkeypatch, capsys):
    import ssl_bench.run.view as view
    from ssl_bench.run.batches import batch_path, write_batch

    def land(key: str) -> None:  # a batch written by the worker holding run r (no view rebuild)
        write_batch(batch_path(tmp_path, "r", key), "r", key, key, [{**ROW, "eval_key": key, "batch": key,
                                                                      "batch_rows": 1}])

    a, b = ResultsStore(tmp_path), ResultsStore(tmp_path)
    a.append([{**ROW, "eval_key": "k1"}])
    land("k2")
    real = view._write_rows

    def paused(f, entries):  # A has its snapshot (k1, k2) when it stops; meanwhile its lock is broken as stale
        n = real(f, entries)
        monkeypatch.setattr(view, "_write_rows", real)
        lock = tmp_path / "results.jsonl.lock"
        lock.rename(lock.with_name(lock.name + ".stale-test"))  # what another worker's FileLock does
        land("k3")
        b.refresh_view()  # and publishes k1, k2, k3
        return n

    monkeypatch.setattr(view, "_write_rows", paused)
    a.refresh_view()
    assert "not rebuilt (the lock was taken over while this process was paused)" in capsys.readouterr().err
    assert sorted(r["eval_key"] for r in _rows(tmp_path)) == ["k1", "k2", "k3"]  # B's newer view stands
    assert {k for _, k in a.done_keys()} == {"k1", "k2", "k3"}  # and the batches, the truth, never were at risk


def test_an_ok_row_a_batch_could_not_hold_is_recorded_as_failed(tmp_path):
    """A plugin returning an undeclared protocol or a value that is not a number: a failed row naming why,
    not a batch that would be judged invalid (and silently recomputed) on every --resume."""
    store = ResultsStore(tmp_path)
    key = "knn:4a1a739c"
    store.append([{**ROW, "eval_key": key, "protocol": "knn_v2"}, {**ROW, "eval_key": key, "protocol": "knn",
                                                                   "metric": "top5", "value": "87.5"}])
    rows = _rows(tmp_path)
    assert [(r["status"], r["value"]) for r in rows] == [("failed", None), ("failed", None)]
    assert rows[0]["error"] == "not a valid result row: protocol 'knn_v2' (evaluation declares knn)"
    assert rows[1]["error"] == "not a valid result row: top5 value '87.5'"
    assert store.verdict("r", key) == "failed"  # retried by --resume, and shown as failed meanwhile
