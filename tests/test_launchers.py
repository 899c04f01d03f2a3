"""Scale-out: `ssl-bench status`, a dead worker's claim taken over, local and SLURM (submitit) launchers."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import TINY_SUITE, results_rows, row_key
from ssl_bench.cli.main import main
from ssl_bench.run.ledger import ResultsStore
from ssl_bench.run.status import eta_seconds, folder_status

FOUR_RUNS = TINY_SUITE.replace("seeds: [0]", "seeds: [0, 1]").replace("table: true", "table: false")


def _suite(tmp_path: Path, epochs: int = 2) -> str:
    path = tmp_path / "four.yaml"
    path.write_text(FOUR_RUNS.format(epochs=epochs))
    return str(path)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory) -> dict:
    """Values of the four-run suite from a single worker: what any number of workers must reproduce."""
    base = tmp_path_factory.mktemp("one")
    out = base / "out"
    assert main(["run", _suite(base), "--out", str(out), "--quiet"]) == 0
    return {row_key(r): r["value"] for r in results_rows(out)}


def _same_as_one_worker(out: Path, one: dict) -> None:
    rows = results_rows(out)
    assert Counter(map(row_key, rows)) == Counter(one.keys())  # every row once, none missing
    for r in rows:
        assert r["value"] == pytest.approx(one[row_key(r)], abs=1e-9), row_key(r)


@pytest.mark.slow
def test_status_of_a_half_finished_folder(tmp_path, capsys):
    suite, out = _suite(tmp_path), tmp_path / "out"
    assert main(["run", suite, "--out", str(out), "--quiet"]) == 0
    rows = results_rows(out)
    byol = sorted({r["run_id"] for r in rows if r["method"] == "byol"})
    for run in byol:  # byol s0 "running" elsewhere, byol s1 pending: their rows are gone
        shutil.rmtree(out / "runs" / run / "results")
    failed = {**next(r for r in rows if r["run_id"] == byol[0]), "status": "failed", "error": "boom: disk",
              "metric": None, "value": None}
    ResultsStore(out).append([failed])  # ... and its first evaluation failed
    (out / "claims").mkdir(exist_ok=True)
    (out / "claims" / f"{byol[0]}.json").write_text(json.dumps(
        {"host": "node7", "pid": 4242, "token": "t", "started": time.time() - 60, "heartbeat": time.time()}))
    assert main(["status", str(out)]) == 0
    printed = capsys.readouterr().out
    states = {s["run_id"]: s for s in folder_status(out)}
    assert [states[b]["state"] for b in byol] == ["running", "pending"]
    assert sum(s["state"] == "done" for s in states.values()) == 2
    assert "node7:4242" in printed and "4 runs: 2 done, 1 running, 0 failed, 1 pending; ETA" in printed
    assert f"{states[byol[0]]['epochs_done']:>4}/2" in printed
    (out / "claims" / f"{byol[0]}.json").unlink()  # its worker is gone: the failed row shows with its reason
    assert folder_status(out)[[s["run_id"] for s in folder_status(out)].index(byol[0])]["state"] == "failed"
    assert main(["status", str(out)]) == 0
    assert "boom: disk" in capsys.readouterr().out


def test_eta_is_remaining_epochs_times_measured_epoch_time():
    states = [{"method": "byol", "state": "done", "epochs": 4, "epochs_done": 4, "epoch_times": [2.0, 4.0]},
              {"method": "byol", "state": "running", "epochs": 4, "epochs_done": 1, "epoch_times": [3.0]},
              {"method": "simclr", "state": "pending", "epochs": 2, "epochs_done": 0, "epoch_times": []}]
    # byol: 3 epochs left at mean(2, 4, 3) = 3 s; simclr: no measurement, all methods' mean 3 s x 2; 1 worker
    assert eta_seconds(states) == pytest.approx(3 * 3.0 + 2 * 3.0)


@pytest.mark.slow
def test_a_dead_workers_claim_expires_and_another_worker_finishes_its_run(tmp_path, one_worker):
    suite, out = _suite(tmp_path, epochs=2), tmp_path / "out"
    cmd = [sys.executable, "-m", "ssl_bench", "run", suite, "--quiet", "--out", str(out), "--resume"]
    first = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, claim = time.time() + 180, None
    while time.time() < deadline and first.poll() is None:  # kill it inside a byol run, after a checkpoint
        ckpts = list(out.glob("runs/byol-*/checkpoint.pt")) if (out / "runs").exists() else []
        if ckpts and not (ckpts[0].parent / "final.pt").exists():
            claim = out / "claims" / f"{ckpts[0].parent.name}.json"
            break
        time.sleep(0.02)
    assert claim is not None and claim.exists(), first.stderr.read() if first.poll() is not None else "too slow"
    first.send_signal(signal.SIGKILL)
    first.wait()
    held = json.loads(claim.read_text())  # as if it had died on another node: only the timeout can free it
    # that node's worker keeps its heartbeat until the second worker waits for it (however slow the second's start
    # on a loaded machine), then stops: the claim expires 10 s later
    stop = threading.Event()

    def beat() -> None:
        while True:
            claim.write_text(json.dumps({**held, "host": "other-node", "heartbeat": time.time()}))
            if stop.wait(0.5):
                return

    beating = threading.Thread(target=beat, daemon=True)
    beating.start()
    second = subprocess.Popen(cmd, env=_env(SSL_BENCH_CLAIM_TIMEOUT_S="10", SSL_BENCH_POLL_S="0.5"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in second.stdout:
        seen.append(line)
        if line.startswith("[wait] "):
            break
    stop.set()
    beating.join()
    rest, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-2000:]
    assert "[wait] 1 run(s) held by other workers" in "".join(seen + [rest])
    second = subprocess.CompletedProcess(cmd, 0, "".join(seen + [rest]), err)
    assert f"took over {claim.stem} from other-node:{held['pid']} (no heartbeat" in second.stderr
    epochs = [json.loads(x)["epoch"] for x in (out / "runs" / claim.stem / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [0, 1]  # continued from the dead worker's checkpoint: each epoch logged once
    _same_as_one_worker(out, one_worker)


@pytest.mark.slow
def test_local_launcher_with_two_workers(tmp_path, one_worker, capsys):
    suite, out = _suite(tmp_path), tmp_path / "out"
    assert main(["run", suite, "--out", str(out), "--launcher", "local", "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "started 2 local worker(s)" in printed
    logs = [(out / "logs" / f"worker{i}.log").read_text() for i in range(2)]
    started = [line.split()[1] for log in logs for line in log.splitlines() if line.startswith("[run] ")]
    assert len(started) == len(set(started)) == 4  # each run trained by exactly one worker
    _same_as_one_worker(out, one_worker)


@pytest.mark.slow
def test_slurm_launcher_runs_through_submitit(tmp_path, one_worker, capsys, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the tasks inherit it: same thread count as the reference
    suite, out = _suite(tmp_path), tmp_path / "out"
    assert main(["run", suite, "--out", str(out), "--launcher", "slurm", "--slurm-cluster", "local",
                 "--workers", "2", "--time-min", "20", "--wait"]) == 0
    printed = capsys.readouterr().out
    assert "submitted job" in printed and "ssl-bench status" in printed
    assert list((out / "logs" / "slurm").rglob("*_log.out"))  # submitit's per-task logs under DIR/logs
    _same_as_one_worker(out, one_worker)
