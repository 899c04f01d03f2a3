"""quality through the command line: a suite of three runs writes quality rows, `ssl-bench table` shows them as
columns, `ssl-bench compare --quality` and the report give Spearman's rho of each against kNN and linear top-1,
checked against ranks and a t-test written out here."""
import json

import numpy as np
import pytest
from scipy import stats

from ssl_bench.cli.main import main

SUITE = """
name: quality-cli
seeds: [0, 1, 2]
datasets: [{name: digits, image_size: 8}]
backbones: [{name: resnet18, label: r18-tiny, kwargs: {channels: [8, 8, 8, 8]}}]
methods: [random]
pretrain: {epochs: 1, batch_size: 64, amp: off}
evaluations:
  - {name: knn, params: {k: 10}}
  - {name: linear, params: {num_l2: 3, max_iter: 50}}
  - {name: quality, params: {lidar_images: 40, lidar_views: 2}}
output: {table: false, report: false}
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    base = tmp_path_factory.mktemp("quality")
    (base / "suite.yaml").write_text(SUITE)
    out = base / "out"
    assert main(["run", str(base / "suite.yaml"), "--out", str(out), "--quiet"]) == 0
    return out


def _values(out, protocol, metric):
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {r["run_id"]: r["value"] for r in rows if r["protocol"] == protocol and r["metric"] == metric
            and r["status"] == "ok"}


def _spearman(x, y):
    """Pearson correlation of the ranks (no ties here), and the two-sided t-test p with n - 2 degrees of freedom."""
    rx, ry = np.argsort(np.argsort(x)).astype(float), np.argsort(np.argsort(y)).astype(float)
    r = float(np.corrcoef(rx, ry)[0, 1])
    n = len(x)
    if abs(r) == 1:
        return r, 0.0
    t = r * np.sqrt((n - 2) / (1 - r * r))
    return r, float(2 * stats.t.sf(abs(t), n - 2))


def test_compare_quality_prints_each_metrics_rank_correlation(finished, capsys):
    capsys.readouterr()
    assert main(["compare", str(finished), "--quality"]) == 0
    text = capsys.readouterr().out
    lines = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line
             for line in text.splitlines() if line.startswith("| ") and "Quality metric" not in line}
    for metric, label in (("rankme", "RankMe"), ("lidar", "LiDAR"), ("alpha_req", "alpha-ReQ")):
        q = _values(finished, "quality", metric)
        assert len(q) == 3
        for protocol, probe in (("knn", "kNN top-1"), ("linear", "Linear top-1")):
            top1 = _values(finished, protocol, "top1")
            runs = sorted(q)
            rho, p = _spearman([q[r] for r in runs], [top1[r] for r in runs])
            cells = [c.strip() for c in lines[(label, probe)].strip().strip("|").split("|")]
            assert cells[3] == "3"
            if len(set(top1.values())) > 1:
                assert float(cells[4]) == pytest.approx(rho, abs=5e-4) and float(cells[5]) == pytest.approx(p, rel=1e-2)
    assert "Spearman's rank correlation over runs" in text


def test_tables_show_the_quality_metrics_as_columns(finished, capsys):
    capsys.readouterr()
    assert main(["table", str(finished)]) == 0
    text = capsys.readouterr().out
    section = text[text.index("Label-free quality"):]
    header = next(line for line in section.splitlines() if line.startswith("| "))
    assert all(name in header for name in ("RankMe", "LiDAR", "alpha-ReQ"))
    assert "**" not in section.split("\n\n")[1]  # no best marked among label-free numbers


def test_report_has_a_quality_section(finished, tmp_path):
    page = tmp_path / "r.html"
    assert main(["report", str(finished), "--output", str(page)]) == 0
    text = page.read_text()
    assert "Label-free quality against the probes" in text and "Spearman rho" in text


def test_compare_needs_a_and_b_or_quality(finished, capsys):
    assert main(["compare", str(finished)]) == 2
    assert "--a and --b missing" in capsys.readouterr().err


def test_compare_quality_without_quality_rows_says_so(finished_tiny, capsys):
    _, out = finished_tiny
    assert main(["compare", str(out), "--quality"]) == 2
    err = capsys.readouterr().err
    assert "--quality: no run has both quality rows" in err and "knn" in err
