"""benchmarks/ledger.py (issue 29 item 6): its generated folders are what the ledger writes, and --quick runs."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import ledger as bench  # noqa: E402
from ssl_bench.run.ledger import ResultsStore  # noqa: E402


def test_generated_rows_are_whole_valid_batches_of_real_size(tmp_path):
    info = bench.build_folder(tmp_path / "out", 16)
    store = ResultsStore(tmp_path / "out")
    keys = [f"{name}:{h}" for name, h in bench.EVALS]
    assert info["rows"] == 16 and all(store.done(r["run_id"], keys) == set(keys) for r in info["runs"])
    assert 1100 < info["row_bytes"] < 1600  # shaped like real rows (~1.2-1.8 KB of JSON)
    assert store.refresh_view() == 16


@pytest.mark.slow
def test_quick_run_prints_one_line_per_size_and_the_ratios(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ledger.py"), "--quick", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [ln for ln in done.stdout.splitlines() if re.match(r"\| [\d,]+ \(", ln)]
    assert [ln.split()[1] for ln in lines] == ["96", "296"] and not any("exit" in ln for ln in lines)
    assert re.search(r"96 -> 296 rows: append x[\d.]+, done-check x[\d.]+", done.stdout)
