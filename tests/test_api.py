"""The notebook API of `import ssl_bench`: run a suite, read its results as a frame, build a table; and the
curated names resolve to the objects plugins import from their modules."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pandas as pd
import pytest

import ssl_bench


def test_every_public_name_is_the_module_object():
    for name, module in ssl_bench._API.items():
        assert getattr(ssl_bench, name) is getattr(importlib.import_module(module), name), name
    assert set(ssl_bench._API) <= set(dir(ssl_bench)) and set(ssl_bench.__all__) >= set(ssl_bench._API)
    with pytest.raises(AttributeError, match="no_such_name"):
        ssl_bench.no_such_name  # noqa: B018


def test_import_is_light():
    """`import ssl_bench` (and so `ssl-bench --help`) does not load torch, pandas or timm."""
    code = "import sys, ssl_bench; print(sorted(m for m in ('torch', 'pandas', 'timm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_run_a_suite_then_read_and_tabulate_it(tiny_suite, tmp_path):
    out = ssl_bench.run_suite(tiny_suite(epochs=1), out=tmp_path / "out", progress=False)
    df = ssl_bench.load_results(out)
    assert isinstance(df, pd.DataFrame)
    assert set(df["method"]) == {"random", "byol"} and set(df["protocol"]) == {"knn", "linear"}
    assert (df["status"] == "ok").all() and df["value"].between(0, 100).all()
    table = ssl_bench.build_table(df, layout="linear")
    byol = df[(df["method"] == "byol") & (df["protocol"] == "linear") & (df["metric"] == "top1")]["value"].iloc[0]
    assert "| byol" in table and f"{byol:.1f}" in table  # the cell shows the recorded number
    assert ssl_bench.build_table(out) == ssl_bench.build_table(df)  # a folder or its frame: the same table
    again = ssl_bench.run_suite(tiny_suite(epochs=1), out=out, resume=True, progress=False)  # reuses what is done
    assert len(ssl_bench.load_results(again)) == len(df)
    assert ssl_bench.write_report(out).name == "report.html"
