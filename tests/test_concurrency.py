"""Concurrent workers on one output folder: exclusive run claims, stale-claim takeover, batch writes that lose
and duplicate nothing, and a compiled results.jsonl that ends up holding every row."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import time
from collections import Counter

import pytest

from conftest import TINY_SUITE
from ssl_bench.run.locks import Claim, FileLock
from ssl_bench.run.ledger import ResultsStore


def _append_many(folder: str, worker: int, n: int) -> None:
    store = ResultsStore(folder)
    base = {"method": "m", "backbone": "b", "pretrain_dataset": "d", "seed": 0, "protocol": "p", "eval_dataset": "d"}
    for i in range(n):
        store.append([{**base, "run_id": f"w{worker}", "eval_key": f"e{i}", "metric": m, "value": float(i),
                       "status": "ok"} for m in ("top1", "top5")])
    store.refresh_view()  # as a worker does at the end of its pass


@pytest.mark.slow
def test_concurrent_appends_lose_and_duplicate_nothing(tmp_path):
    procs = [mp.get_context("spawn").Process(target=_append_many, args=(str(tmp_path), w, 8)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    keys = Counter((r["run_id"], r["eval_key"], r["metric"]) for r in rows)
    assert len(keys) == 4 * 8 * 2 and set(keys.values()) == {1}
    assert not list(tmp_path.glob("results.jsonl.tmp*")) and not (tmp_path / "results.jsonl.lock").exists()


def test_a_claim_is_exclusive_until_released(tmp_path):
    a, b = Claim(tmp_path, "run1", heartbeat_s=0.05), Claim(tmp_path, "run1")
    assert a.acquire()
    assert not b.acquire()
    assert b.held_by()["pid"] == os.getpid() and b.held_by()["token"] == a.me["token"]
    first = a.held_by()["heartbeat"]
    time.sleep(0.3)
    assert a.held_by()["heartbeat"] > first  # the owner's heartbeat keeps it fresh
    a.release()
    assert b.acquire()
    b.release()
    assert not (tmp_path / "run1.json").exists()


def test_a_claim_without_heartbeat_is_taken_over_and_logged(tmp_path, capsys):
    old = {"host": "other-node", "pid": 12345, "token": "t", "started": 0, "heartbeat": time.time() - 5}
    (tmp_path / "run1.json").write_text(json.dumps(old))
    assert not Claim(tmp_path, "run1", timeout_s=60).acquire()  # 5 s old: the other node may be alive
    late = Claim(tmp_path, "run1", timeout_s=1)
    assert late.acquire()  # older than the timeout: taken over
    late.release()
    assert "took over run1 from other-node:12345 (no heartbeat" in capsys.readouterr().err
    assert "other-node:12345" in (tmp_path / "takeovers.log").read_text()


def test_a_claim_of_a_killed_process_on_this_host_is_taken_at_once(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    import socket
    (tmp_path / "run1.json").write_text(json.dumps({"host": socket.gethostname(), "pid": proc.pid,
                                                    "token": "t", "heartbeat": time.time()}))
    claim = Claim(tmp_path, "run1", timeout_s=3600)
    assert claim.acquire()
    claim.release()


def test_a_stale_lock_is_broken(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text(json.dumps({"host": "gone", "pid": 1, "time": time.time() - 1000}))
    with FileLock(lock, timeout_s=5, stale_s=10):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


@pytest.mark.slow
def test_two_workers_share_a_suite_and_train_each_run_once(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(TINY_SUITE.format(epochs=2).replace("seeds: [0]", "seeds: [0, 1]")
                     .replace("table: true", "table: false"))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ssl_bench", "run", str(suite), "--quiet", "--out", str(out), "--resume"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    # the worker that finishes first may see the other's runs unrecorded: exit 3 with a line saying so
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0 or (p.returncode == 3 and "held by another worker" in err), err[-2000:]
    assert 0 in [p.returncode for p in procs]
    trained = [re.findall(r"^\[run\] (\S+)", o[0], re.M) for o in outs]
    assert sorted(sum(trained, [])) == sorted(set(sum(trained, [])))  # no run started by both workers
    assert len(set(sum(trained, []))) == 4
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    keys = Counter((r["run_id"], r["eval_key"], r["metric"]) for r in rows)
    assert len(keys) == 4 * 2 * 2 and set(keys.values()) == {1}  # 4 runs x (knn, linear) x (top1, top5)
    for run in (out / "runs").glob("byol-*"):
        epochs = [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert epochs == [0, 1]
    assert not list((out / "claims").glob("*.json"))
