"""Issue #26 items 4 and 5 with real processes: SIGTERM is a clean stop (claim and locks released, one line,
exit 143), `--launcher local` passes it to its workers, and a worker paused past the claim timeout (SIGSTOP)
whose run was taken over stops working on it instead of training beside the new owner."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import TINY_SUITE, metrics_rows, results_rows, row_key

pytestmark = pytest.mark.slow  # every test starts ssl-bench processes

TERMINATED = "terminated (SIGTERM); claims and locks released; continue with --resume"


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}


def _suite(tmp_path: Path, epochs: int, seeds: str = "[0]", byol_only: bool = False) -> str:
    text = TINY_SUITE.format(epochs=epochs).replace("seeds: [0]", f"seeds: {seeds}").replace("table: true",
                                                                                             "table: false")
    if byol_only:
        text = text.replace("  - random\n", "")
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return str(path)


def _wait_for(condition, proc: subprocess.Popen, timeout_s: float = 480.0, what: str = ""):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {what}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _byol_claims(out: Path) -> list[Path]:
    return sorted((out / "claims").glob("byol-*.json")) if (out / "claims").is_dir() else []


def _leftovers(out: Path) -> list[str]:
    """Claims and locks a stopped worker must not leave behind."""
    return sorted(str(p.relative_to(out)) for p in [*out.glob("claims/*.json"), *out.rglob("*.lock")])


def test_sigterm_releases_the_claim_and_exits_143(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ssl_bench", "run", _suite(tmp_path, epochs=40), "--quiet", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: list(out.glob("runs/byol-*/checkpoint.pt")), proc, what="a byol checkpoint")
    assert _byol_claims(out)  # it holds the run it is training
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1] == TERMINATED
    assert _leftovers(out) == []


def test_sigterm_to_the_local_launcher_reaches_its_workers(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ssl_bench", "run", _suite(tmp_path, epochs=40, seeds="[0, 1]", byol_only=True),
           "--out", str(out), "--launcher", "local", "--workers", "2"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    claims = _wait_for(lambda: len(_byol_claims(out)) == 2 and _byol_claims(out), proc, what="two workers training")
    pids = [json.loads(c.read_text())["pid"] for c in claims]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1] == TERMINATED
    for pid in pids:  # the workers stopped too (and were reaped by the launcher)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for i in range(2):
        assert (out / "logs" / f"worker{i}.log").read_text().strip().splitlines()[-1] == TERMINATED
    assert _leftovers(out) == []


def test_a_worker_that_lost_its_claim_stops_working_on_that_run(tmp_path):
    out = tmp_path / "out"
    epochs = 8
    env = _env(SSL_BENCH_HEARTBEAT_S="0.2", SSL_BENCH_CLAIM_TIMEOUT_S="3", SSL_BENCH_POLL_S="0.5")
    cmd = [sys.executable, "-m", "ssl_bench", "run", _suite(tmp_path, epochs=epochs, byol_only=True), "--quiet",
           "--out", str(out), "--resume"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: list(out.glob("runs/byol-*/checkpoint.pt")), first, what="a byol checkpoint")
    (claim,) = _byol_claims(out)
    token = json.loads(claim.read_text())["token"]
    first.send_signal(signal.SIGSTOP)  # paused past the claim timeout ...
    try:
        time.sleep(3.5)
        second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(lambda: claim.exists() and json.loads(claim.read_text() or "{}").get("token") not in (None, token),
                  second, what="the second worker's takeover")  # ... and the run was taken over
    finally:
        first.send_signal(signal.SIGCONT)
    out2, err2 = second.communicate(timeout=600)
    out1, err1 = first.communicate(timeout=600)
    assert second.returncode == 0, err2[-2000:]
    assert first.returncode in (0, 3), err1[-2000:]
    assert re.search(rf"lost the claim on {claim.stem} to \S+:{second.pid} .*stopped working on it", err1), err1
    assert not re.search(r"^\s+byol\s+knn", out1, re.M), out1 + err1  # it evaluated nothing of the run it lost
    assert re.search(r"^\s+byol\s+knn", out2, re.M)
    assert [r["epoch"] for r in metrics_rows(out / "runs" / claim.stem)] == list(range(epochs))  # each epoch once
    assert set(Counter(map(row_key, results_rows(out))).values()) == {1}
