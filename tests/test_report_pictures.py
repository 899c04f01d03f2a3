"""Issue 27 item 8: tables and plots that do not mislead: the online head in its own table, intervals clipped to
0-100 on display (raw in CSV), one look per method across every plot with `random` visible, free pivots that
keep label fractions apart, warmup longer than the run refused, and table / report before the first result."""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ssl_bench.cli.main import main
from ssl_bench.report.plots import make_figures
from ssl_bench.report.tables import load_results

from conftest import batch_files


def rec(method, seed, protocol, metric, value, label_fraction=None, eval_dataset="digits"):
    return {"suite": "tiny", "run_id": f"{method}-s{seed}", "method": method, "backbone": "r18",
            "pretrain_dataset": "digits", "protocol": protocol, "eval_dataset": eval_dataset, "metric": metric,
            "value": value, "seed": seed, "status": "ok", "error": None, "label_fraction": label_fraction,
            "epochs": 3, "extra": {}, "eval_key": f"{protocol}:{eval_dataset}:{label_fraction}"}


SEMI = {("random", 0.01): [10.0, 12.0], ("random", 0.1): [40.0, 44.0], ("supervised", 0.01): [10.0, 12.0],
        ("supervised", 0.1): [40.0, 44.0], ("byol", 0.01): [20.0, 26.0], ("byol", 0.1): [60.0, 61.0]}


@pytest.fixture
def folder(tmp_path):
    recs = [rec(m, s, "semi_supervised", "top1", v, f) for (m, f), vals in SEMI.items() for s, v in enumerate(vals)]
    for m in ("random", "supervised", "byol"):
        for s, v in enumerate((99.0, 100.0) if m == "byol" else (80.0, 82.0)):
            recs += [rec(m, s, "linear", "top1", v), rec(m, s, "transfer_linear", "top1", v - 20, None, "mnist5k")]
        if m != "random":
            recs += [rec(m, s, "online_linear", "top1", 70.0 + s) for s in (0, 1)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return tmp_path


def _section(text: str, title: str) -> str:
    return text.split(f"### {title}")[1].split("###")[0]


def test_online_head_has_its_own_table(folder, capsys):
    assert main(["table", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "Linear (online)" not in _section(text, "Linear evaluation (frozen encoder)")
    online = _section(text, "Online linear head")
    assert "not a frozen-encoder probe" in online and "70.5" in online  # mean of 70 and 71


def test_intervals_are_clipped_on_display_and_raw_in_csv(folder, capsys):
    lo, hi = sps.t.interval(0.95, 1, loc=99.5, scale=sps.sem([99.0, 100.0]))  # independent: Student t, 2 seeds
    assert hi > 100
    assert main(["table", str(folder), "--layout", "linear", "--ci"]) == 0
    text = capsys.readouterr().out
    assert f"99.5 [{lo:.1f}, 100.0]" in text and f"{hi:.1f}" not in text
    assert main(["table", str(folder), "--layout", "linear", "--ci", "--format", "csv"]) == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    byol = csv[(csv["method"] == "byol") & (csv["table"] == "linear")]
    assert byol["ci_hi"].iloc[0] == pytest.approx(hi)  # the raw bound stays in the CSV


def test_one_colour_per_method_across_plots_and_random_on_top(folder):
    figs = make_figures(folder, load_results([str(folder)]))
    semi = {c.get_label(): c.lines[0] for c in figs["label_fraction"].axes[0].containers}
    from matplotlib.container import BarContainer

    bars = {c.get_label(): c.patches[0] for c in figs["transfer"].axes[0].containers if isinstance(c, BarContainer)}
    assert set(semi) == set(bars) == {"random", "supervised", "byol"}
    from matplotlib.colors import to_rgba
    for m in semi:
        assert to_rgba(semi[m].get_color()) == to_rgba(bars[m].get_facecolor())
    assert len({to_rgba(line.get_color()) for line in semi.values()}) == 3
    # random equals supervised in the semi plot: dashed, hollow, drawn over it
    assert semi["random"].get_linestyle() == "--" and semi["random"].get_zorder() > semi["supervised"].get_zorder()
    assert np.array_equal(semi["random"].get_ydata(), semi["supervised"].get_ydata())


def test_free_pivot_never_averages_label_fractions(folder, capsys):
    assert main(["table", str(folder), "--rows", "method", "--columns", "protocol"]) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.startswith("| Method"))
    assert header.count("Semi-supervised") == 2 and "1%" in header and "10%" in header
    byol = next(line for line in text.splitlines() if line.startswith("| byol"))
    assert f"{np.mean([20.0, 26.0]):.1f}" in byol and f"{np.mean([60.0, 61.0]):.1f}" in byol
    assert f"{np.mean([20.0, 26.0, 60.0, 61.0]):.1f}" not in byol
    assert "never averages across them" in text


def test_warmup_longer_than_the_run_is_refused(tiny_suite, capsys):
    path = tiny_suite(epochs=2)
    assert main(["validate", path, "methods[1].optim.warmup_epochs=3"]) == 2
    assert "methods[1].optim.warmup_epochs: bad value 3; allowed: at most pretrain.epochs (2)" in \
        capsys.readouterr().err
    assert main(["validate", path, "methods[1].optim={base_lr: 1.0}", "pretrain.optim={warmup_epochs: 5}"]) == 2
    assert "pretrain.optim.warmup_epochs: bad value 5" in capsys.readouterr().err
    assert main(["validate", path, "methods[1].optim.warmup_epochs=2"]) == 0


def test_table_and_report_before_the_first_result_show_pending_runs(finished_tiny, tmp_path, capsys):
    _, done = finished_tiny
    out = tmp_path / "out"
    shutil.copytree(done, out)
    for batch in batch_files(out):  # the folder as it is before any evaluation landed
        batch.unlink()
    (out / "results.jsonl").unlink()
    capsys.readouterr()
    assert main(["table", str(out)]) == 0
    text = capsys.readouterr().out
    assert "no results yet; 2 of 2 runs still to finish" in text and "random-" in text and "byol-" in text
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "no results yet" in page and "byol-" in page
    empty = tmp_path / "never_started"
    empty.mkdir()
    assert main(["table", str(empty)]) == 2  # not a result folder at all: still refused
