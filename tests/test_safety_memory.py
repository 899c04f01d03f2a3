"""Issue #26 item 2 and #29 item 6: no command that reads results (table, compare, report, status, export) or a
suite (validate) allocates memory in proportion to a tampered input. Each runs in a subprocess whose data
segment is capped (RLIMIT_DATA: heap and anonymous mappings; RLIMIT_AS cannot be used, importing torch maps
3.6 GB of address space) and must finish in time with its usual exit code.

Before the fixes: `table` looped forever on the numpy overflow of a 1e308 value (the warnings helper re-emitted
warnings into the list it was reading) and the YAML bomb expanded to 59 GB when `description` was stringified."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from ssl_bench.cli.main import main

pytestmark = pytest.mark.slow  # subprocesses and one tiny run

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 3 << 29  # 1.5 GiB of data segment: the commands need ~0.6 GiB on clean inputs
BIG = 10_000_000  # a 10 MB string in a field
SUITE = """
name: mem26
datasets: [{name: digits, image_size: 8}]
backbones: [{name: resnet18, label: r18, kwargs: {channels: [8, 8, 8, 8], stem_width: 8}}]
methods: [random, {name: byol, params: {proj_hidden_dim: 16, proj_dim: 8, pred_hidden_dim: 16}}]
pretrain: {epochs: 1, batch_size: 64, amp: off, num_workers: 0}
evaluations: [{name: knn, params: {k: 10}}]
output: {table: false, report: false}
"""
SCRIPT = """
import json, resource, sys
from ssl_bench.cli.main import main
out, tmp, run = sys.argv[1:4]
commands = {"table": ["table", out], "table_ci_latex": ["table", out, "--ci", "--format", "latex"],
            "compare": ["compare", out, "--a", "byol", "--b", "random"],
            "report": ["report", out, "--output", tmp + "/r.html"], "status": ["status", out],
            "export": ["export", run, "--output", tmp + "/e.pth"]}
codes = {name: main(argv) for name, argv in commands.items()}
print(json.dumps({"codes": codes, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (LIMIT, LIMIT))


def run_capped(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_capped)


@pytest.fixture(scope="module")
def tampered(tmp_path_factory) -> tuple[Path, Path]:
    """A real tiny result folder whose results.jsonl then gets rows no run writes."""
    base = tmp_path_factory.mktemp("mem26")
    (base / "s.yaml").write_text(SUITE)
    out = base / "out"
    assert main(["run", str(base / "s.yaml"), "--out", str(out), "--quiet"]) in (0, 3)
    lines = (out / "results.jsonl").read_text().splitlines()
    real = json.loads(lines[-1])
    bad = [{"value": 1e308}, {"value": -1.0}, {"value": "NaN"}, {"seed": "3"}, {"method": "m" * BIG},
           {"error": "e" * BIG, "status": "failed", "value": None}, {"backbone": "b" * BIG}, {"epochs": 1e308},
           {"extra": {"note": "n" * BIG}}]
    rows = [json.dumps({**real, "run_id": f"{real['run_id']}-t{i}", **b}) for i, b in enumerate(bad)]
    (out / "results.jsonl").write_text("\n".join(lines + rows) + "\n")
    # results.jsonl is a view compiled from the batch files; without them (a folder written before batches
    # existed) it is read as it is, tampered rows included
    for batch in out.glob("runs/*/results/*.json"):
        batch.unlink()
    (out / "results.view.json").unlink()
    marker = json.loads((out / ".ssl-bench").read_text())
    marker.pop("ledger")  # as a version before the ledger wrote it
    (out / ".ssl-bench").write_text(json.dumps(marker))
    run = next(p for p in (out / "runs").iterdir() if p.name.startswith("byol"))
    return out, run


def test_every_command_that_reads_results_stays_small_on_tampered_rows(tampered, tmp_path):
    out, run = tampered
    done = run_capped(["-c", SCRIPT, str(out), str(tmp_path), str(run)], timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"peak RSS of the six commands: {result['peak_rss_mb']} MB")  # for the record (-s); bounded by LIMIT
    assert result["codes"] == {"table": 0, "table_ci_latex": 0, "compare": 0, "report": 0, "status": 0,
                               "export": 0}, done.stderr[-3000:]
    warning = [line for line in done.stderr.splitlines() if "not valid results" in line]
    assert len(warning) == 4 and "7 row(s)" in warning[0], done.stderr[-3000:]  # table x2, compare, report
    assert len(done.stdout) < 200_000 and len(done.stderr) < 50_000  # no 10 MB label was printed
    assert "invalid" in done.stdout
    card = json.loads((tmp_path / "e.pth.json").read_text())
    assert max(len(json.dumps(r)) for r in card["results"]) < 1000


def test_the_issues_yaml_bomb_is_one_line_under_a_memory_cap(tmp_path):
    """996 KB: a 600 KB string aliased 99,000 times (under the 1 MiB file and 100,000 node caps) in a backbone
    kwarg, which passed validate and died in the config hash (the same in `description`: tests/test_safety_inputs)."""
    from test_safety_inputs import _string_bomb

    field = "backbones[0].kwargs.pretrained_cfg_overlay.notes"
    path = tmp_path / "bomb.yaml"
    path.write_text(_string_bomb("kwargs", chars=600_000, copies=98_998))
    assert path.stat().st_size < 1 << 20
    done = run_capped(["-m", "ssl_bench", "validate", str(path)], timeout=300)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and err[0].startswith(f"error: {field}: expands to more than"), \
        done.stderr[-2000:]
