"""Tables from hand-written results.jsonl files: aggregation, marks, missing / failed cells, formats, CLI."""
from __future__ import annotations

import io
import json
import math
import re
import statistics
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ssl_bench.cli.main import main
from ssl_bench.errors import UserError
from ssl_bench.evaluations.linear import LinearEvaluation
from ssl_bench.report.tables import load_results, render, summary_table, table_frame
from ssl_bench.report.tables import aggregate
from ssl_bench.report.tables.uncertainty import Uncertainty

# method -> values by seed: byol wins top-1; simclr's seeds 0 and 1 (71, 71.5 against byol's 70, 72) are not told
# apart from it by a paired t-test (tied); moco_v2's (10, 11, 12 points under byol on each seed) are.
LINEAR_TOP1 = {"byol": [70.0, 72.0, 74.0], "simclr": [71.0, 71.5], "moco_v2": [60.0, 61.0, 62.0]}
LINEAR_TOP5 = {"byol": [90.0, 91.0, 92.0], "simclr": [92.0]}  # moco_v2 has no top-5: a dash, never 0
EPOCHS = {"byol": 1000, "simclr": 1000, "moco_v2": 200, "random": 0}


def rec(method, protocol, metric, value, seed, status="ok", eval_dataset="imagenet", label_fraction=None, **kw):
    r = {"suite": "fixture", "run_id": f"{method}-s{seed}", "method": method, "backbone": "resnet50",
         "pretrain_dataset": "imagenet", "protocol": protocol, "eval_dataset": eval_dataset, "metric": metric,
         "value": value, "seed": seed, "status": status, "error": None if status == "ok" else "boom",
         "label_fraction": label_fraction, "config_hash": "h", "method_params": {}, "eval_params": {},
         "epochs": EPOCHS[method], "versions": {"torch": "x"}, "wall_time_s": 1.0, "pretrain_time_s": 2.0,
         "timestamp": "2025-01-01T00:00:00+00:00", "extra": {},
         "eval_key": f"{protocol}:{eval_dataset}:{label_fraction}"}
    r.update(kw)
    return r


def fixture_records() -> list[dict]:
    recs = []
    for table, metric in ((LINEAR_TOP1, "top1"), (LINEAR_TOP5, "top5")):
        for m, vals in table.items():
            recs += [rec(m, "linear", metric, v, s) for s, v in enumerate(vals)]
    # kNN: byol seed 2 collapsed (its low value must not enter the mean); random collapsed everywhere.
    recs += [rec("byol", "knn", "top1", 60.0, 0), rec("byol", "knn", "top1", 64.0, 1),
             rec("byol", "knn", "top1", 3.0, 2, status="collapsed"), rec("simclr", "knn", "top1", 61.0, 0),
             rec("random", "knn", "top1", 9.5, 0, status="collapsed")]
    # random's linear probe failed before reporting any metric: it must show as failed in top-1 and top-5.
    recs.append(rec("random", "linear", None, None, 0, status="failed"))
    for s, (a, b) in enumerate([(50.0, 66.0), (52.0, 70.0)]):
        recs += [rec("byol", "semi_supervised", "top1", a, s, label_fraction=0.01),
                 rec("byol", "semi_supervised", "top1", b, s, label_fraction=0.1)]
    # the recipe the transfer evaluation records with its defaults (BYOL Table 3's L-BFGS protocol)
    lbfgs = {"recipe": LinearEvaluation().recipe({})}
    recs += [rec("byol", "transfer_linear", "top1", 75.0, 0, eval_dataset="food101", **lbfgs),
             rec("byol", "transfer_linear", "top1", 55.0, 0, eval_dataset="fgvc_aircraft", **lbfgs),
             rec("byol", "transfer_linear", "mean_per_class", 58.0, 0, eval_dataset="fgvc_aircraft", **lbfgs),
             rec("simclr", "transfer_linear", "top1", 70.0, 0, eval_dataset="food101", **lbfgs)]
    return recs


def write_results(folder, records, torn_tail: str = "") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records) + torn_tail
    (folder / "results.jsonl").write_text(text)
    return str(folder)


@pytest.fixture
def out(tmp_path) -> str:
    return write_results(tmp_path / "out", fixture_records())


@pytest.fixture
def df(out) -> pd.DataFrame:
    return load_results([out])


def md_table(text: str, title: str | None = None) -> dict[str, dict[str, str]]:
    """Parse the markdown table under `title` (or the first one) into {first column: {header: cell}}."""
    lines = text.splitlines()
    start = lines.index(f"### {title}") if title else 0
    rows = []
    for line in lines[start:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split(" | ")])
        elif rows:
            break
    header, body = rows[0], rows[2:]
    return {r[0]: dict(zip(header, r)) for r in body}


# --- loading --------------------------------------------------------------------------------------------------

def test_load_reads_every_record_and_warns_on_torn_last_line(tmp_path):
    records = fixture_records()
    folder = write_results(tmp_path / "o", records, torn_tail='{"suite": "fixture", "meth')
    with pytest.warns(UserWarning, match=rf"1 unreadable line\(s\) \(line {len(records) + 1}\)"):
        frame = load_results([folder])
    # every whole record; the metric-less failure spread over the two metrics linear reports
    assert len(frame) == len(records) + 1
    assert set(frame.loc[frame["method"] == "random", "metric"]) == {"top1", "top5"}


def test_load_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(UserError, match="nowhere"):
        load_results([str(tmp_path / "nowhere")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty/results.jsonl: not found"):
        load_results([str(tmp_path / "empty")])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.jsonl").write_text(json.dumps(fixture_records()[0]) + "\n{oops\n" + json.dumps(
        fixture_records()[1]) + "\n")
    # a garbled line in the middle is skipped with a warning naming it; the records around it still count
    with pytest.warns(UserWarning, match=r"1 unreadable line\(s\) \(line 2\)"):
        frame = load_results([str(bad)])
    assert len(frame) == 2


def test_same_folder_twice_counts_once(out):
    with pytest.warns(UserWarning, match="appear twice"):
        frame = load_results([out, out])
    assert len(frame) == len(load_results([out]))


# --- aggregation ----------------------------------------------------------------------------------------------

def test_aggregate_mean_std_n_match_hand_computation(df):
    agg = aggregate(df[df["protocol"].isin(["linear", "knn"])], ["method"], ["protocol", "metric"])
    agg = agg.set_index(["method", "protocol", "metric"])
    for m, vals in LINEAR_TOP1.items():
        line = agg.loc[(m, "linear", "top1")]
        assert line["mean"] == pytest.approx(statistics.mean(vals))
        assert line["std"] == pytest.approx(statistics.stdev(vals))  # sample std, ddof=1
        assert line["n"] == len(vals)
    one = agg.loc[("simclr", "linear", "top5")]
    assert one["n"] == 1 and math.isnan(one["std"]) and one["mean"] == 92.0
    knn = agg.loc[("byol", "knn", "top1")]  # the collapsed seed stays out of the mean
    assert (knn["mean"], knn["n"], knn["n_collapsed"]) == (62.0, 2, 1)
    assert knn["std"] == pytest.approx(statistics.stdev([60.0, 64.0]))
    assert agg.loc[("random", "knn", "top1"), "status"] == "collapsed"
    assert math.isnan(agg.loc[("random", "knn", "top1"), "mean"])
    assert agg.loc[("random", "linear", "top1"), "status"] == "failed"
    assert ("moco_v2", "linear", "top5") not in agg.index


def test_aggregate_rejects_unknown_and_dict_fields(df):
    with pytest.raises(UserError, match="--rows: unknown field 'metod'.*allowed: .*method"):
        aggregate(df, ["metod"], ["metric"])
    with pytest.raises(UserError, match="--columns: unknown field 'extra'"):
        aggregate(df, ["method"], ["extra"])


def test_aggregate_warns_when_a_cell_mixes_settings(df):
    with pytest.warns(UserWarning, match="mix several values of .*protocol"):
        aggregate(df, ["method"], ["metric"])


# --- markdown: marks, missing, failed ---------------------------------------------------------------------------

def test_markdown_bold_tie_missing_and_failure_marks(df):
    text = render(df, layout="linear")
    t = md_table(text, "Linear evaluation (frozen encoder)")
    assert t["byol"]["Top-1"] == "**72.0 ± 2.0**"
    # paired by seed (0, 1): p of scipy's ttest_rel well above 0.05, so tied
    assert sps.ttest_rel([70.0, 72.0], [71.0, 71.5]).pvalue > 0.5
    assert t["simclr"]["Top-1"] == "71.2 ± 0.4† (n=2)"
    assert sps.ttest_rel([70.0, 72.0, 74.0], [60.0, 61.0, 62.0]).pvalue < 0.05
    assert "†" not in t["moco_v2"]["Top-1"] and "**" not in t["moco_v2"]["Top-1"]
    assert t["simclr"]["Top-5"] == "**92.0** (n=1)"  # n=1: no +- at all
    # one shared seed with the best and no saved predictions: no test, so no mark (the one-std rule gave one)
    assert t["byol"]["Top-5"] == "91.0 ± 1.0"
    assert t["moco_v2"]["Top-5"] == "–"  # missing cell: a dash, never 0
    assert t["random"]["Top-1"] == t["random"]["Top-5"] == "failed"
    footnote = text.split("\n\n")[2]
    assert "**bold**" in footnote and "–: no result" in footnote
    assert "†: not significantly different from the best at α = 0.05 (a two-sided paired t-test" in footnote
    assert "could not be tested" in footnote


def test_collapsed_cells_never_show_their_low_number(df):
    t = md_table(render(df, layout="auto"), "k-nearest-neighbour classifier (frozen encoder)")
    assert t["random"]["Top-1"] == "collapsed"
    assert t["byol"]["Top-1"] == "**62.0 ± 2.8** [1 collapsed]"
    assert t["simclr"]["Top-1"] == "61.0 (n=1)"  # one shared seed, no saved predictions: not tested, no mark
    assert "9.5" not in render(df) and "3.0" not in render(df, layout="auto")


def test_semi_and_transfer_layouts_follow_the_paper(df):
    semi = md_table(render(df, layout="semi"))
    assert semi["byol"]["1% Top-1"] == "**51.0 ± 1.4**" and semi["byol"]["10% Top-1"] == "**68.0 ± 2.8**"
    tr = md_table(render(df, layout="transfer"))
    assert list(tr["byol"]) == ["Method", "Food101", "Aircraft (mpc)"]  # the dataset's own metric only
    assert tr["byol"]["Aircraft (mpc)"] == "**58.0**" and tr["simclr"]["Aircraft (mpc)"] == "–"
    assert tr["simclr"]["Food101"] == "70.0"


def test_free_pivot_and_layout_errors(df):
    text = render(df, layout="linear", rows=["method", "seed"], columns=["metric"])
    lines = [ln for ln in text.splitlines() if ln.startswith("| byol")]
    assert [ln.split("|")[2].strip() for ln in lines] == ["0", "1", "2"]
    assert lines[2].split("|")[3].strip() == "**74.0**" and lines[0].split("|")[3].strip() == "70.0"
    with pytest.raises(UserError, match="--layout semi|--layout"):
        render(df[df["protocol"] == "knn"], layout="semi")
    with pytest.raises(UserError, match="--format: bad value 'pdf'"):
        render(df, fmt="pdf")


def test_render_accepts_an_aggregated_frame(df):
    agg = aggregate(df[df["protocol"] == "linear"], ["method"], ["metric"])
    t = md_table(render(agg))
    assert t["byol"]["Top-1"] == "**72.0 ± 2.0**" and t["moco_v2"]["Top-5"] == "–"


def test_summary_table_columns(out):
    t = md_table(summary_table(out))
    assert list(t["byol"])[1:] == ["knn top1", "linear top1", "semi 1% top1", "semi 10% top1",
                                   "transfer food101 top1", "transfer fgvc_aircraft top1",
                                   "transfer fgvc_aircraft mean_per_class"]
    assert t["byol"]["linear top1"] == "**72.0 ± 2.0**" and t["moco_v2"]["knn top1"] == "–"


# --- published rows and delta -----------------------------------------------------------------------------------

def test_published_rows_beside_another_protocol_are_references_without_delta(df):
    """Our `linear` is the cached L-BFGS probe; BYOL Table 1 measured an SGD head (`linear_sgd`): shown, never
    subtracted (tests/test_published.py checks deltas across every protocol)."""
    text = render(df, layout="linear", with_published=True)
    t = md_table(text)
    byol = t["byol (reported, Linear (SGD), 1000 ep, batch 4096) [1]‡"]
    assert byol["Top-1"] == "74.3" and byol["Backbone"] == "resnet50"  # not bold: not our run
    assert not any(h.startswith("Δ") for h in t["byol"])  # no delta column at all
    assert t["moco_v2 (reported, Linear (SGD), 200 ep, batch 256) [3]‡"]["Top-1"] == "67.5"
    assert "Backbone" in t["byol"]  # resnet200_2x rows differ from ours in backbone
    assert "‡: reported with a protocol, setting or evaluation recipe that none of our rows here shares" in text


def test_published_rows_of_the_same_setting_get_a_delta(df):
    t = md_table(render(df, layout="transfer", with_published=True))
    assert t["byol"]["Δ Food101"] == f"{75.0 - 75.3:+.1f}"  # BYOL Table 3, transfer_linear, 1000 epochs both
    assert t["byol"]["Δ Aircraft (mpc)"] == f"{58.0 - 60.6:+.1f}"
    assert t["byol (reported, 1000 ep, batch 4096) [1]"]["Food101"] == "75.3"  # matched: no mark
    assert t["supervised (reported) [1]‡"]["Food101"] == "72.3"  # no supervised run of ours


# --- formats ----------------------------------------------------------------------------------------------------

def test_csv_round_trip_equals_the_frame(df):
    for layout, published in (("auto", True), ("linear", False), ("semi", False)):
        text = render(df, layout=layout, fmt="csv", with_published=published)
        frame = table_frame(df, layout=layout, with_published=published)
        pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(text)), frame)
    pivot = dict(rows=["method", "seed", "epochs"], columns=["protocol", "eval_dataset", "label_fraction", "metric"])
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(render(df, fmt="csv", **pivot))), table_frame(df, **pivot))
    reread = pd.read_csv(io.StringIO(render(df, layout="linear", fmt="csv")))
    byol = reread[(reread["method"] == "byol") & (reread["metric"] == "top1")].iloc[0]
    assert (byol["mean"], byol["n"], bool(byol["best"])) == (72.0, 3, True)
    assert byol["std"] == pytest.approx(2.0)


def test_latex_is_compile_shaped(df):
    text = render(df, layout="all", fmt="latex", with_published=True)
    stack = []
    for kind, env in re.findall(r"\\(begin|end)\{(\w+)\}", text):
        if kind == "begin":
            stack.append(env)
        else:
            assert stack.pop() == env
    assert not stack
    assert text.count(r"\toprule") == text.count(r"\bottomrule") == text.count(r"\begin{tabular}") >= 4
    assert r"moco\_v2" in text and r"\textbf{72.0 $\pm$ 2.0}" in text
    prose = "\n".join(ln for ln in text.splitlines() if not ln.startswith("%"))  # drop comment lines
    prose = re.sub(r"\$[^$]*\$", "", prose).replace(" & ", " ")  # drop math and column separators
    assert not re.search(r"(?<!\\)[_%&#]", prose), "unescaped special character"
    for block in re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", text, re.S):
        ncols = len(block[0])
        body = [ln for ln in block[1].splitlines() if ln.endswith(r"\\")]
        assert body and all(ln.count(" & ") == ncols - 1 for ln in body)


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.bold = [], 0

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append(0)
        elif tag in ("td", "th"):
            self.tables[-1][-1] += 1
        elif tag == "b":
            self.bold += 1


def test_html_parses_into_rectangular_tables(df):
    p = _Tables()
    p.feed(render(df, layout="all", fmt="html", with_published=True))
    assert len(p.tables) == 4  # linear, knn, semi, transfer: one per section with results
    for rows in p.tables:
        assert len(set(rows)) == 1 and len(rows) >= 2
    assert p.bold >= 5


# --- command line -----------------------------------------------------------------------------------------------

def test_cli_table_writes_the_requested_format(out, tmp_path, capsys):
    dest = tmp_path / "t.tex"
    assert main(["table", out, "--layout", "linear", "--format", "latex", "--with-published",
                 "--output", str(dest)]) == 0
    assert r"\begin{tabular}" in dest.read_text()
    assert main(["table", out, "--rows", "method", "--columns", "protocol,metric"]) == 0
    assert "Linear Top-1" in capsys.readouterr().out
    assert main(["table", out, str(tmp_path / "missing")]) == 2
    assert "missing: not found" in capsys.readouterr().err


def test_a_seed_repeated_in_a_cell_counts_once():
    """Two evaluation configs of seed 0 (80, 60) and one of seed 1 (70): two seeds of 70 each, not n=3."""
    from ssl_bench.report.tables.aggregate import aggregate
    frame = pd.DataFrame({"method": ["byol"] * 3, "protocol": ["transfer_finetune"] * 3, "seed": [0, 0, 1],
                          "value": [80.0, 60.0, 70.0], "status": ["ok"] * 3})
    with pytest.warns(UserWarning, match="same seed twice"):
        agg = aggregate(frame, ["method"], ["protocol"])
    assert agg.loc[0, "n"] == 2
    assert agg.loc[0, "mean"] == pytest.approx(70.0)
    assert agg.loc[0, "std"] == pytest.approx(0.0)


def test_two_configurations_sharing_a_label_are_never_averaged(tmp_path):
    """Two suites gave the label `byol` to different hyperparameters (same epochs, same seeds): two rows."""
    recs = [rec("byol", "linear", "top1", v, s, run_id=f"a-s{s}", setting_hash="aaa", method_params={"tau": 0.99})
            for s, v in enumerate([70.0, 72.0])]
    recs += [rec("byol", "linear", "top1", v, s, run_id=f"b-s{s}", setting_hash="bbb", method_params={"tau": 0.9})
             for s, v in enumerate([50.0, 52.0])]
    folder = write_results(tmp_path / "o", recs)
    with pytest.warns(UserWarning, match="different configurations"):
        frame = load_results([folder])
    agg = aggregate(frame, ["method"], ["protocol", "metric"])
    assert len(agg) == 2 and all(m.startswith("byol [") for m in agg["method"])
    assert sorted(agg["mean"]) == [51.0, 71.0] and list(agg["n"]) == [2, 2]
    # one configuration over several seeds stays one row, under its own label
    plain = load_results([write_results(tmp_path / "p", recs[:2])])
    assert set(plain["method"]) == {"byol"}


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
