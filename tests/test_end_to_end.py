"""A tiny suite end to end, and kill -> --resume with no duplicated or lost records."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from conftest import results_rows as _records, row_key as _key
from ssl_bench.cli.main import main

REQUIRED = {"suite", "method", "backbone", "pretrain_dataset", "protocol", "eval_dataset", "metric", "value",
            "seed", "config_hash", "versions", "wall_time_s", "status"}


@pytest.mark.slow
def test_tiny_suite_end_to_end(tiny_suite, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", tiny_suite(2), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    recs = _records(out)
    assert {r["method"] for r in recs} == {"random", "byol"}
    assert {r["protocol"] for r in recs} >= {"knn", "linear"}
    for r in recs:
        assert REQUIRED <= set(r), REQUIRED - set(r)
        assert r["status"] == "ok" and 0 <= r["value"] <= 100
        assert r["versions"]["torch"]
    assert len({_key(r) for r in recs}) == len(recs)
    byol_dir = next((out / "runs").glob("byol-*"))
    metrics = [json.loads(x) for x in (byol_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [0, 1]
    assert (byol_dir / "final.pt").exists() and (out / "suite.yaml").exists()
    assert "byol" in printed and "random" in printed  # the table printed at the end
    # the same command again continues the folder: nothing is redone (and the same with --resume)
    assert main(["run", tiny_suite(2), "--out", str(out), "--quiet"]) == 0
    assert main(["run", tiny_suite(2), "--out", str(out), "--quiet", "--resume"]) == 0
    assert len(_records(out)) == len(recs)
    assert "[skip]" in capsys.readouterr().out
    # another version of the suite file without --resume is still a user error
    assert main(["run", tiny_suite(3), "--out", str(out), "--quiet"]) == 2
    assert "folder already holds results; allowed: --resume" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_then_resume(tiny_suite, tmp_path):
    suite = tiny_suite(6)
    killed, resumed = tmp_path / "killed", tmp_path / "straight"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}  # tiny model: 1 thread is fastest
    cmd = [sys.executable, "-m", "ssl_bench", "run", suite, "--quiet", "--out"]
    proc = subprocess.Popen(cmd + [str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    ckpt = None
    while time.time() < deadline and proc.poll() is None:  # kill BYOL mid-training, after a checkpoint
        ckpts = list((killed / "runs").glob("byol-*/checkpoint.pt")) if (killed / "runs").exists() else []
        if ckpts and not (ckpts[0].parent / "final.pt").exists():
            ckpt = ckpts[0]
            break
        time.sleep(0.02)
    assert ckpt is not None, proc.stderr.read() if proc.poll() is not None else "no checkpoint in time"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (ckpt.parent / "final.pt").exists()
    before = _records(killed) if (killed / "results.jsonl").exists() else []
    assert {r["method"] for r in before} <= {"random"}  # random finished, byol did not
    done = subprocess.run(cmd + [str(killed), "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _records(killed)
    keys = Counter(_key(r) for r in after)
    assert all(c == 1 for c in keys.values()), keys
    straight = subprocess.run(cmd + [str(resumed)], env=env, capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    ref = _records(resumed)
    assert set(keys) == {_key(r) for r in ref}  # nothing lost
    # the resumed run continued from its checkpoint: same epochs logged once each, same numbers
    metrics = [json.loads(x) for x in (ckpt.parent / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == list(range(6))
    vals = {_key(r): r["value"] for r in after}
    for r in ref:
        assert abs(vals[_key(r)] - r["value"]) < 1e-6, (r["method"], r["protocol"], r["metric"])
