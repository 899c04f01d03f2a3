"""Issue 27 item 1: the precision actually trained in, the device and the CPU thread count are in every result
row, in every table's footnote and in the HTML report."""
from __future__ import annotations

import shutil

import torch

from ssl_bench.cli.main import main
from ssl_bench.config.run_spec import expand
from ssl_bench.config.suite import load_suite
from ssl_bench.run.ledger import ResultsStore
from ssl_bench.run.recorder import RunRecorder

from conftest import results_rows


def test_every_row_names_precision_device_and_threads(finished_tiny):
    _, out = finished_tiny
    rows = results_rows(out)
    assert rows and {r["method"] for r in rows} == {"random", "byol"}
    for r in rows:  # the tiny suite pins amp: off; conftest runs one intra-op thread
        assert (r["precision"], r["device"], r["threads"]) == ("fp32", "cpu", torch.get_num_threads())


def test_tables_and_report_footnote_the_precision(finished_tiny, tmp_path, capsys):
    _, done = finished_tiny
    out = tmp_path / "out"
    shutil.copytree(done, out)
    threads = torch.get_num_threads()
    note = "Ran in fp32 on cpu"
    for layout in ("auto", "linear"):
        assert main(["table", str(out), "--layout", layout]) == 0
        printed = capsys.readouterr().out
        tables = printed.count("| Method")
        assert tables >= 1 and printed.count(note) == tables  # one footnote under every table
        assert f"{threads} thread" in printed
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert '<p class="hardware">Ran in fp32 on cpu' in page and page.count(note) >= 3  # header + each table


def test_rows_of_a_bf16_run_say_bf16_and_untrained_rows_fp32(tmp_path, tiny_suite):
    suite = load_suite(tiny_suite())
    store = ResultsStore(tmp_path)
    seen = {}
    for spec in expand(suite, amp="bf16"):  # what run_suite passes on a CPU with native bf16
        trains = spec.method.name != "random"
        seen[spec.method.name] = RunRecorder(spec, store, suite.name, device=torch.device("cpu"),
                                             trains=trains).base["precision"]
    assert seen == {"random": "fp32", "byol": "bf16"}


def test_footnote_lists_each_combination_with_its_methods(finished_tiny, tmp_path, capsys):
    import json

    _, done = finished_tiny
    out = tmp_path / "out"
    shutil.copytree(done, out)
    results = out / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    for r in rows:
        if r["method"] == "byol":
            r["precision"], r["threads"] = "bf16", 8
    from ssl_bench.report.tables import render
    import pandas as pd

    df = pd.DataFrame(rows)
    text = render(df, layout="linear")
    assert "fp32 on cpu" in text and ": random" in text and "bf16 on cpu" in text and "8 threads: byol" in text


def test_summary_layout_shows_each_cells_interval(finished_tiny, capsys):
    import re

    _, out = finished_tiny
    assert main(["table", str(out), "--layout", "summary", "--ci"]) == 0
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith(("| random", "| byol"))]
    assert len(rows) == 2 and all(len(re.findall(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", r)) == 2 for r in rows)
    assert "Ran in fp32 on cpu" in text
    assert main(["table", str(out), "--layout", "summary", "--format", "latex"]) == 2
