"""Plots and the self-contained HTML report of a hand-written result folder (results.jsonl + runs/*)."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from ssl_bench.cli.main import main
from ssl_bench.report.plots import label_fraction_figure, training_figure, transfer_figure, write_plots
from ssl_bench.report.run_logs import run_logs
from ssl_bench.report.html import write_report
from ssl_bench.report.tables import load_results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEMI = {("byol", 0.01): [40.0, 44.0], ("byol", 0.1): [60.0, 62.0], ("simclr", 0.01): [35.0, 35.0],
        ("simclr", 0.1): [55.0, 57.0]}
LOSS = {"byol": lambda e, s: 4.0 - 0.5 * e + 0.1 * s, "simclr": lambda e, s: 6.0 - 0.2 * e}


def rec(method, seed, protocol, metric, value, eval_dataset="digits", label_fraction=None, status="ok"):
    return {"suite": "tiny", "run_id": f"{method}-s{seed}", "method": method, "backbone": "r18",
            "pretrain_dataset": "digits", "protocol": protocol, "eval_dataset": eval_dataset, "metric": metric,
            "value": value, "seed": seed, "status": status, "error": None if status == "ok" else "out of <memory>",
            "label_fraction": label_fraction, "epochs": 3, "versions": {"torch": "2.x"}, "extra": {},
            "eval_key": f"{protocol}:{eval_dataset}"}


@pytest.fixture
def out(tmp_path) -> Path:
    recs = []
    for (method, frac), vals in SEMI.items():
        recs += [rec(method, s, "semi_supervised", "top1", v, label_fraction=frac) for s, v in enumerate(vals)]
    for method in LOSS:
        for s in (0, 1):
            recs += [rec(method, s, "linear", "top1", 80.0 + s), rec(method, s, "knn", "top1", 70.0 + s),
                     rec(method, s, "transfer_linear", "top1", 60.0 + s, eval_dataset="mnist5k")]
            run = tmp_path / "runs" / f"{method}-s{s}"
            run.mkdir(parents=True)
            (run / "run.json").write_text(json.dumps({"config": {"method": method}}))
            rows = [{"epoch": e, "step": 10 * e, "loss": LOSS[method](e, s), "lr": 0.1, "tau": 0.99,
                     "images_per_s": 100.0, "time_s": 1.0, **({"knn_top1": 50.0 + e} if method == "byol" else {})}
                    for e in range(3)]
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recs.append(rec("random", 0, "linear", None, None, status="failed"))
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return tmp_path


def test_label_fraction_plot_shows_seed_means(out):
    fig = label_fraction_figure(load_results([str(out)]))
    lines = {c.get_label(): c.lines[0] for c in fig.axes[0].containers}  # errorbar: (data line, caps, bars)
    for method in ("byol", "simclr"):
        x, y = lines[method].get_data()
        assert list(x) == [1.0, 10.0]
        assert list(y) == [np.mean(SEMI[(method, 0.01)]), np.mean(SEMI[(method, 0.1)])]


def test_result_plots_carry_confidence_intervals(out):
    """Bars: the Student t interval over the two seeds (what `ssl-bench table --ci` prints), not +- std."""
    df = load_results([str(out)])
    bars = {c.get_label(): c.lines[2][0].get_segments() for c in label_fraction_figure(df).axes[0].containers}
    for method in ("byol", "simclr"):
        for (x, lo), (_, hi) in (seg for seg in bars[method]):
            vals = SEMI[(method, x / 100)]
            want = sps.t.interval(0.95, 1, loc=np.mean(vals), scale=sps.sem(vals)) if np.std(vals) else (vals[0],) * 2
            assert (lo, hi) == pytest.approx(want)
    fig = transfer_figure(df)
    (bars,) = [c for c in fig.axes[0].containers if c.get_label() == "byol" and getattr(c, "errorbar", None)]
    (_, lo), (_, hi) = bars.errorbar.lines[2][0].get_segments()[0]
    assert (lo, hi) == pytest.approx(sps.t.interval(0.95, 1, loc=60.5, scale=sps.sem([60.0, 61.0])))


def test_training_curves_average_seeds_per_epoch(out):
    logs = run_logs(out, load_results([str(out)]))
    assert set(logs["series"]) == {"byol", "simclr"} and len(logs) == 12
    fig = training_figure(logs)
    assert len(fig.axes) == 3  # a loss panel per method, one kNN panel (only byol logs it)
    x, y = fig.axes[0].get_lines()[0].get_data()
    assert list(x) == [1, 2, 3]
    assert np.allclose(y, [np.mean([LOSS["byol"](e, s) for s in (0, 1)]) for e in range(3)])
    assert [ln.get_label() for ln in fig.axes[2].get_lines()] == ["byol"]


def test_method_name_falls_back_to_run_json(out):
    logs = run_logs(out)  # no results frame: names come from runs/*/run.json
    assert set(logs["series"]) == {"byol", "simclr"}


def test_plots_are_written_and_non_empty(out):
    paths = write_plots(out)
    assert set(paths) == {"label_fraction", "training", "transfer"}
    for path in paths.values():
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.images, self.links, self.headings, self._h = 0, [], [], [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tables += tag == "table"
        if tag == "img":
            self.images.append(a)
        if tag in ("link", "script", "a") or (tag != "img" and "src" in a):
            self.links.append((tag, a))
        self._h = tag == "h2"

    def handle_data(self, data):
        if self._h:
            self.headings.append(data)
            self._h = False


def test_report_is_one_self_contained_page(out):
    path = write_report(str(out))
    assert path == out / "report.html"
    page = _Page()
    page.feed(path.read_text())
    # summary + linear + knn + semi + transfer tables + the failures table
    assert page.tables == 6
    assert page.headings == ["Summary", "Tables", "Plots", "Failures", "Versions"]
    assert len(page.images) == 3 and not page.links  # nothing fetched from elsewhere
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1]).startswith(PNG_MAGIC)
    text = path.read_text()
    assert "out of &lt;memory&gt;" in text  # error messages escaped, shown in the failures table
    assert text.count("How to read this:") == 3  # one line under each figure
    lo, hi = sps.t.interval(0.95, 1, loc=80.5, scale=sps.sem([80.0, 81.0]))
    assert f"80.5 [{lo:.1f}, {hi:.1f}]" in text  # tables with their intervals (linear: 80, 81 over two seeds)
    assert "Mean [95% CI]" in text
    assert (out / "plots" / "training.png").exists()


def test_cli_report_and_its_errors(out, tmp_path, capsys):
    dest = tmp_path / "elsewhere.html"
    assert main(["report", str(out), "--output", str(dest)]) == 0
    assert dest.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "nope: not found" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium (Debian's chromium) not installed")
def test_report_renders_in_headless_chromium(out, tmp_path):
    path = write_report(str(out))
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,2000", path.as_uri()], check=True, timeout=60, capture_output=True)
    assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 10000
