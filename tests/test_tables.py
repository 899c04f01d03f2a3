"""Tables from hand-written results.jsonl files: aggregation, marks, missing / failed cells, formats, CLI."""
from __future__ import annotations

import io
import json
import math
import re
import statistics
from html.parser import HTMLParser

import pandas as pd
import pytest
from scipy import stats as sps

from ssl_bench.cli.main import main
from ssl_bench.errors import UserError
from ssl_bench.report.tables import load_results, render, summary_table, table_frame
from ssl_bench.report.tables import aggregate
from table_fixtures import LINEAR_TOP1, LINEAR_TOP5, df, fixture_records, md_table, out, rec, write_results  # noqa: F401

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
