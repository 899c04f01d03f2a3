"""Tables' uncertainty (issue #15): intervals over seeds and the paired tests behind the tie marks (against scipy),
the one-seed bootstrap from saved predictions (against a bootstrap written here), `ssl-bench compare`, and a
three-seed CPU suite's tables in every format."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ssl_bench.cli.main import main
from ssl_bench.report.tables import load_results, render, table_frame
from ssl_bench.report.tables.uncertainty import Uncertainty
from table_fixtures import LINEAR_TOP1, LINEAR_TOP5, df, fixture_records, md_table, out, rec, write_results  # noqa: F401


# --- intervals and the paired tests behind the tie marks (issue #15) --------------------------------------------

def _t_ci(values, level=0.95):
    return sps.t.interval(level, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))


def test_ci_over_seeds_is_the_student_t_interval_in_every_format(df):
    lo, hi = _t_ci(LINEAR_TOP1["byol"])
    cell = f"72.0 [{lo:.1f}, {hi:.1f}]"
    assert cell == "72.0 [67.0, 77.0]"
    md = render(df, layout="linear", ci=True)
    t = md_table(md)
    assert t["byol"]["Top-1"] == f"**{cell}**" and t["moco_v2"]["Top-1"] == "61.0 [58.5, 63.5]"
    assert t["simclr"]["Top-5"] == "**92.0 [n/a]** (n=1)"  # one seed, no saved predictions: says so
    assert "Mean [95% CI]: a Student t interval over seeds (2 or more" in md and "[n/a]: one seed and no" in md
    assert rf"\textbf{{{cell}}}" in render(df, layout="linear", fmt="latex", ci=True)
    assert f"<b>{cell}</b>" in render(df, layout="linear", fmt="html", ci=True)
    frame = pd.read_csv(io.StringIO(render(df, layout="linear", fmt="csv", ci=True, ci_level=0.9)))
    byol = frame[(frame["method"] == "byol") & (frame["metric"] == "top1")].iloc[0]
    assert (byol["ci_lo"], byol["ci_hi"]) == pytest.approx(_t_ci(LINEAR_TOP1["byol"], 0.9), abs=1e-9)
    assert (byol["ci_method"], byol["ci_level"]) == ("t", 0.9)
    simclr = frame[(frame["method"] == "simclr") & (frame["metric"] == "top1")].iloc[0]
    assert simclr["p_vs_best"] == pytest.approx(sps.ttest_rel([70.0, 72.0], [71.0, 71.5]).pvalue, abs=1e-12)
    assert simclr["tie_test"] == "t" and bool(simclr["tied"])
    for published in (False, True):  # the CSV reads back as the frame
        pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(render(df, fmt="csv", ci=True, with_published=published))),
                                      table_frame(df, with_published=published, unc=Uncertainty(ci=True)))
    # the default CSV keeps its columns
    assert "ci_lo" not in pd.read_csv(io.StringIO(render(df, layout="linear", fmt="csv"))).columns


def test_published_rows_have_no_interval(df):
    t = md_table(render(df, layout="linear", with_published=True, ci=True))
    assert t["byol (reported, Linear (SGD), 1000 ep, batch 4096) [1]‡"]["Top-1"] == "74.3"


def test_tie_mark_appears_and_disappears_with_the_paired_t_test(tmp_path):
    """b's seeds trail a's by 1, 1.5, 0.5 points: p = 0.074, tied at alpha 0.05, not at 0.1; c trails by 10-12."""
    a, b, c = [70.0, 72.0, 74.0], [69.0, 70.5, 73.5], [60.0, 61.0, 62.0]
    recs = [rec(m, "linear", "top1", v, s) for m, vals in (("byol", a), ("simclr", b), ("moco_v2", c))
            for s, v in enumerate(vals)]
    frame = load_results([write_results(tmp_path / "o", recs)])
    p = sps.ttest_rel(a, b).pvalue
    assert 0.05 < p < 0.1
    t = md_table(render(frame, layout="linear"))
    assert t["simclr"]["Top-1"] == "71.0 ± 2.3†" and "†" not in t["moco_v2"]["Top-1"]
    assert "†" not in md_table(render(frame, layout="linear", alpha=0.1))["simclr"]["Top-1"]
    # the same values without a shared seed: no test, no mark
    moved = [dict(r, seed=r["seed"] + 10, run_id=r["run_id"] + "x") if r["method"] == "simclr" else r for r in recs]
    frame = load_results([write_results(tmp_path / "p", moved)])
    assert md_table(render(frame, layout="linear"))["simclr"]["Top-1"] == "71.0 ± 2.3"


def _write_evidence(folder, run: str, hits: np.ndarray, labels: np.ndarray) -> str:
    rel = f"runs/{run}/predictions/linear-0__linear__imagenet.npz"
    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / rel, labels=labels, top1=hits)
    return rel


def _bootstrap_means(hits: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Each method's top-1 on the same resamples of the test images, directly (numpy indexing)."""
    from ssl_bench.report import stats
    rng, out = np.random.default_rng(stats.BOOTSTRAP_SEED), {m: [] for m in hits}
    for _ in range(0, stats.BOOTSTRAP_RESAMPLES, stats.BOOTSTRAP_CHUNK):
        idx = rng.integers(0, n, (stats.BOOTSTRAP_CHUNK, n))
        for m, h in hits.items():
            out[m] += list(100.0 * h[idx].mean(axis=1))
    return {m: np.array(v) for m, v in out.items()}


@pytest.fixture
def one_seed(tmp_path):
    """One seed, saved per-image hits on 500 test images: simclr differs from byol on 12 images (6 won, 6 lost
    against 12 lost in all), moco_v2 is another, weaker classifier; random has no saved predictions."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500).astype(np.int8)
    byol = rng.random(500) < 0.8
    simclr = byol.copy()
    simclr[np.flatnonzero(byol)[:12]] = False
    simclr[np.flatnonzero(~byol)[:6]] = True
    hits = {"byol": byol, "simclr": simclr, "moco_v2": rng.random(500) < 0.6}
    folder = tmp_path / "one"
    recs = [rec(m, "linear", "top1", 100.0 * h.mean(), 0,
                extra={"predictions": _write_evidence(folder, m, h, labels), "n_test": 500}) for m, h in hits.items()]
    recs.append(rec("random", "linear", "top1", 10.0, 0))
    return write_results(folder, recs), hits


def test_one_seed_bootstrap_interval_and_tie_from_saved_predictions(one_seed):
    out, hits = one_seed
    frame = load_results([out])
    tidy = pd.read_csv(io.StringIO(render(frame, layout="linear", fmt="csv", ci=True))).set_index("method")
    dist = _bootstrap_means(hits, 500)
    for m in hits:  # the percentile interval of scipy's bootstrap with the same draws
        ref = sps.bootstrap((100.0 * hits[m],), np.mean, n_resamples=1000, batch=50, method="percentile",
                            rng=np.random.default_rng(0)).confidence_interval
        assert (tidy.loc[m, "ci_lo"], tidy.loc[m, "ci_hi"]) == pytest.approx((ref.low, ref.high), abs=1e-9)
        assert tidy.loc[m, "ci_method"] == "bootstrap"
    for m in ("simclr", "moco_v2"):  # the paired bootstrap p-value, computed directly
        d = 100.0 * (hits["byol"].mean() - hits[m].mean())
        deltas = dist["byol"] - dist[m]
        want = (1 + np.sum(np.abs(deltas - d) >= abs(d) - 1e-12)) / 1001
        assert tidy.loc[m, "p_vs_best"] == pytest.approx(want) and tidy.loc[m, "tie_test"] == "bootstrap"
    assert tidy.loc["simclr", "p_vs_best"] > 0.05 > tidy.loc["moco_v2", "p_vs_best"]
    assert tidy.loc["random", "ci_method"] == "no evidence" and tidy.loc["random", "tie_test"] == "none"
    text = render(frame, layout="linear", ci=True)
    t = md_table(text)
    assert t["simclr"]["Top-1"].endswith("]†") and "†" not in t["moco_v2"]["Top-1"]
    assert t["random"]["Top-1"] == "10.0 [n/a]"
    assert "percentile bootstrap interval over the test images (1000 resamples, seed 0)" in text
    assert "paired bootstrap over the same test images" in text
    # without --ci the tie marks are the same (the test reads the saved predictions all the same)
    assert md_table(render(frame, layout="linear"))["simclr"]["Top-1"] == f"{100 * hits['simclr'].mean():.1f}†"


def test_bootstrap_refuses_evidence_that_does_not_reproduce_the_value(one_seed, tmp_path):
    out, hits = one_seed
    lines = [json.loads(x) for x in (tmp_path / "one" / "results.jsonl").read_text().splitlines()]
    lines[0]["value"] += 5.0  # the file no longer says how this value was measured
    (tmp_path / "one" / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    t = md_table(render(load_results([out]), layout="linear", ci=True))
    assert t["byol"]["Top-1"] == f"**{100 * hits['byol'].mean() + 5:.1f} [n/a]**"


def test_cli_table_ci_flags_and_their_errors(out, capsys):
    assert main(["table", out, "--layout", "linear", "--ci", "--ci-level", "0.9", "--alpha", "0.1"]) == 0
    text = capsys.readouterr().out
    assert "Mean [90% CI]" in text and "α = 0.1" in text
    for flag in ("--ci-level", "--alpha"):
        assert main(["table", out, flag, "1.5"]) == 2
        assert f"{flag}: bad value 1.5; allowed: a number strictly between 0 and 1" in capsys.readouterr().err


def test_compare_prints_the_difference_its_interval_and_p(out, one_seed, capsys):
    assert main(["compare", out, "--a", "byol", "--b", "simclr", "--protocol", "linear"]) == 0
    text = capsys.readouterr().out
    top1 = next(ln for ln in text.splitlines() if "| top1" in ln)
    d = np.subtract([70.0, 72.0], [71.0, 71.5])
    lo, hi = _t_ci(d)
    cells = [c.strip() for c in top1.strip("|").split("|")]
    assert cells[6] == f"{d.mean():+.2f} [{lo:+.2f}, {hi:+.2f}]"
    assert cells[7] == f"{sps.ttest_rel([70.0, 72.0], [71.0, 71.5]).pvalue:.3g}"
    assert cells[8:10] == ["paired t", "2"]
    top5 = next(ln for ln in text.splitlines() if "| top5" in ln)
    assert "none: one shared seed and no saved predictions for both" in top5
    folder, hits = one_seed
    assert main(["compare", folder, "--a", "simclr", "--b", "moco_v2"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "| top1" in ln)
    assert "paired bootstrap" in line and line.rstrip(" |").endswith("500")
    assert main(["compare", out, "--a", "byol", "--b", "nope"]) == 2
    assert "--b: unknown method 'nope'; allowed: byol, moco_v2, random, simclr" in capsys.readouterr().err
    assert main(["compare", out, "--a", "byol", "--b", "simclr", "--protocol", "semi"]) == 2
    assert "--protocol: bad value 'semi'; allowed:" in capsys.readouterr().err


THREE_SEEDS = """
name: three
seeds: [0, 1, 2]
datasets: [{name: digits, image_size: 8}]
backbones: [{name: resnet18, label: r18-tiny, kwargs: {channels: [4, 8, 8, 8], stem_width: 4}}]
methods:
  - random
  - name: byol
    params: {proj_hidden_dim: 32, proj_dim: 16, pred_hidden_dim: 32}
    optim: {base_lr: 1.0, warmup_epochs: 1}
  - name: simclr
    params: {proj_hidden_dim: 32, proj_dim: 16}
pretrain: {epochs: 2, batch_size: 64, amp: off, log_every: 5}
evaluations: [{name: knn, params: {k: 10}}, {name: linear, params: {num_l2: 5}}]
output: {table: false, report: false}
"""


@pytest.mark.slow
def test_three_seed_cpu_suite_shows_intervals_and_tie_marks_in_every_format(tmp_path, capsys):
    suite = tmp_path / "three.yaml"
    suite.write_text(THREE_SEEDS)
    out = str(tmp_path / "out")
    assert main(["run", str(suite), "--out", out, "--quiet"]) == 0
    capsys.readouterr()
    interval = r"\d+\.\d \[-?\d+\.\d, \d+\.\d\]"  # a t interval over 3 seeds may reach below 0
    for fmt, dagger in (("markdown", "†"), ("latex", r"$^\dagger$"), ("html", "<sup>&dagger;</sup>")):
        assert main(["table", out, "--ci", "--format", fmt]) == 0
        text = capsys.readouterr().out
        assert len(re.findall(interval, text)) == 12 and dagger in text, fmt  # 3 methods x (knn, linear) x 2 metrics
        assert "Student t interval over seeds" in text
    assert main(["table", out, "--ci", "--format", "csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert set(frame["ci_method"]) == {"t"} and frame["tied"].any() and frame["ci_lo"].lt(frame["mean"]).all()
    # one cell per seed: bootstrap intervals from the predictions every evaluation saved
    assert main(["table", out, "--ci", "--rows", "method,seed", "--columns", "protocol,metric"]) == 0
    text = capsys.readouterr().out
    assert len(re.findall(interval, text)) == 36 and "[n/a]" not in text and "percentile bootstrap" in text
    assert main(["compare", out, "--a", "byol", "--b", "random", "--protocol", "linear"]) == 0
    assert "paired t" in capsys.readouterr().out
