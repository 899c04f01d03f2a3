"""The output folder's ledger through the CLI: what --overwrite may delete, resume that repairs the results file,
strict JSON, and rows written exactly once."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from conftest import TINY_SUITE, results_rows as _rows, row_key as _key
from ssl_bench.cli.main import main
from ssl_bench.run.outdir import MARKER
from ssl_bench.run.ledger import UNREADABLE_FILE, ResultsStore

pytestmark = pytest.mark.slow  # every test here trains or runs a suite (quick loop: -m "not slow")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """(suite file, output folder of a finished 2-epoch tiny suite); tests copy the folder before changing it."""
    base = tmp_path_factory.mktemp("ledger")
    suite = base / "tiny.yaml"
    suite.write_text(TINY_SUITE.format(epochs=2).replace("table: true", "table: false"))
    out = base / "out"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) == 0
    return suite, out


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

def test_garbled_line_is_set_aside_and_everything_else_goes_on(finished, tmp_path, capsys):
    suite, out = _copy(finished, tmp_path)
    lines = (out / "results.jsonl").read_text().splitlines()
    garbage = '{"run_id": "x", "value": 7'  # a torn write in the middle
    (out / "results.jsonl").write_text("\n".join(lines[:2] + [garbage] + lines[2:]) + "\n")
    assert main(["table", str(out)]) == 0  # tables read past it with a warning
    assert main(["run", suite, "--out", str(out), "--resume", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"moved 1 unreadable line(s) (3) to {out / UNREADABLE_FILE}" in err
    assert (out / UNREADABLE_FILE).read_text() == garbage + "\n"
    assert [_key(r) for r in _rows(out)] == [_key(json.loads(x)) for x in lines]  # nothing recomputed or lost


def test_a_lost_row_recomputes_its_evaluation_without_duplicates(finished, tmp_path, capsys):
    suite, out = _copy(finished, tmp_path)
    rows = _rows(out)
    lost = next(i for i, r in enumerate(rows) if r["method"] == "byol" and r["metric"] == "top5")
    kept = rows[:lost] + rows[lost + 1:]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    assert main(["run", suite, "--out", str(out), "--resume", "--quiet"]) == 0
    after = _rows(out)
    assert Counter(map(_key, after)) == Counter(map(_key, rows))  # the lost row is back, nothing twice
    again = {_key(r): r["value"] for r in after}
    assert all(again[_key(r)] == pytest.approx(r["value"], abs=1e-9) for r in rows)


def test_failed_rows_are_retried_on_resume(finished, tmp_path):
    suite, out = _copy(finished, tmp_path)
    rows = _rows(out)
    byol_knn = [r for r in rows if r["method"] == "byol" and r["protocol"] == "knn"]
    failed = {**byol_knn[0], "metric": None, "value": None, "status": "failed", "error": "transient"}
    failed.pop("batch", None), failed.pop("batch_rows", None)
    others = [r for r in rows if r not in byol_knn]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in others + [failed]))
    assert main(["run", suite, "--out", str(out), "--resume", "--quiet"]) == 0
    after = _rows(out)
    assert Counter(map(_key, after)) == Counter(map(_key, rows))
    assert all(r["status"] == "ok" for r in after)


def test_leftover_temp_files_are_removed_on_resume(finished, tmp_path):
    suite, out = _copy(finished, tmp_path)
    tmp = out / "results.jsonl.tmp99999"
    tmp.write_text("half a file")
    assert main(["run", suite, "--out", str(out), "--resume", "--quiet"]) == 0
    assert not tmp.exists()


# --- strict JSON and the store's batches -------------------------------------------------------------------------

def _strict_loads(line: str) -> dict:
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(line, parse_constant=refuse)


def test_results_file_is_strict_json(finished, tmp_path):
    _, out = finished
    for line in (out / "results.jsonl").read_text().splitlines():
        _strict_loads(line)
    store = ResultsStore(tmp_path)
    store.append([{"run_id": "r", "eval_key": "k", "metric": "top1", "value": float("nan"), "status": "ok",
                   "extra": {"curve": [1.0, float("inf")]}}])
    (row,) = [_strict_loads(x) for x in store.path.read_text().splitlines()]
    assert row["value"] is None and row["status"] == "failed" and "nan" in row["error"]
    assert row["extra"]["curve"] == [1.0, None]


def test_store_writes_a_key_once_and_replaces_incomplete_batches(tmp_path):
    store = ResultsStore(tmp_path)
    two = [{"run_id": "r", "eval_key": "k", "metric": m, "value": 1.0, "status": "ok"} for m in ("top1", "top5")]
    assert store.append(two) == 2
    assert store.append(two) == 0  # complete already (another worker wrote it): not written twice
    assert store.done_keys() == {("r", "k")}
    lines = store.path.read_text().splitlines()
    store.path.write_text(lines[0] + "\n")  # the top5 row is lost
    assert store.done_keys() == set()
    assert store.append(two) == 2
    assert [json.loads(x)["metric"] for x in store.path.read_text().splitlines()] == ["top1", "top5"]
