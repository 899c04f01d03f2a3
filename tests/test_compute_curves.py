"""kNN top-1 against compute: curves from the monitor, equal-compute values, the table layout and the plot."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from conftest import TINY_SUITE
from ssl_bench.cli.main import main
from ssl_bench.report.compute_curves import at_equal_compute, curves
from ssl_bench.report.tables import load_results

pytestmark = pytest.mark.slow  # every test here trains or runs a suite (quick loop: -m "not slow")


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    base = tmp_path_factory.mktemp("curves")
    text = TINY_SUITE.format(epochs=3).replace("log_every: 5}", "log_every: 5, knn_monitor: {every: 1}}")
    text = text.replace("methods:\n  - random\n", "methods:\n  - random\n  - name: simclr\n    params: "
                        "{proj_hidden_dim: 32, proj_dim: 16}\n")
    suite = base / "s.yaml"
    suite.write_text(text.replace("table: true", "table: false"))
    out = base / "out"
    assert main(["run", str(suite), "--out", str(out), "--quiet"]) in (0, 3)
    return out


def _hand(out, axis):
    """The same numbers straight from metrics.jsonl: images = step x 64; seconds = running sum of time_s."""
    runs = {}
    for run in (out / "runs").iterdir():
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()] \
            if (run / "metrics.jsonl").exists() else []
        if rows:
            x = [r["step"] * 64 for r in rows] if axis == "images_seen" else list(np.cumsum([r["time_s"] for r in rows]))
            runs[run.name.split("-")[0]] = (np.array(x), np.array([r["knn_top1"] for r in rows]))
    level = min(x.max() for x, _ in runs.values())
    return level, {m: float(np.interp(level, x, y)) for m, (x, y) in runs.items()}


@pytest.mark.parametrize("axis", ["images_seen", "wall_s"])
def test_equal_compute_is_the_interpolated_curve(monitored, axis):
    cv = curves(monitored, load_results([str(monitored)]))
    assert set(cv["method"]) == {"byol", "simclr"}  # random is not pretrained: no curve
    level, values = at_equal_compute(cv, axis)
    want_level, want = _hand(monitored, axis)
    assert level == pytest.approx(want_level)
    assert {m: values[m] for m in want} == pytest.approx(want)


def test_compute_layout_and_report_plot(monitored, capsys):
    assert main(["table", str(monitored), "--layout", "compute"]) == 0
    text = capsys.readouterr().out
    assert "Compute per method" in text and "GFLOPs / image" in text and "kNN top-1 at equal compute" in text
    level, values = at_equal_compute(curves(monitored, load_results([str(monitored)])), "images_seen")
    assert f"| byol | {values['byol']:.1f} |" in text and f"at {level:,.0f} images seen" in text
    assert main(["table", str(monitored), "--layout", "compute", "--format", "csv"]) == 2
    assert main(["report", str(monitored)]) == 0
    page = (monitored / "report.html").read_text()
    assert "kNN top-1 of the kNN monitor during pretraining against images seen" in page
    assert (monitored / "plots" / "compute.png").exists() or 'alt="compute plot"' in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_compute_plot_renders_in_headless_chromium(monitored, tmp_path):
    assert main(["report", str(monitored)]) == 0
    page = (monitored / "report.html").read_text()
    assert 'alt="compute plot"' in page and "How to read this: a method that is higher at the same x" in page
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,3200", (monitored / "report.html").as_uri()], check=True, timeout=60,
                   capture_output=True)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20000
