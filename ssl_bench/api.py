"""What a notebook needs, in four calls: run a suite, read its results as a pandas frame, and make the tables
and the report from them (the same code paths as `ssl-bench run`, `table` and `report`).

    import ssl_bench
    out = ssl_bench.run_suite("suites/quickstart.yaml", out="results/quickstart")
    df = ssl_bench.load_results(out)
    print(ssl_bench.build_table(df, layout="linear"))
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ssl_bench.config.spec import Suite
from ssl_bench.config.suite import load_suite as _load_suite


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file (every check `ssl-bench validate` makes); raises UserError naming the field."""
    return _load_suite(str(path))


def run_suite(suite: str | Path | Suite, out: str | Path | None = None, *, resume: bool = False,
              overwrite: bool = False, progress: bool = True) -> Path:
    """Pretrain and evaluate every run of `suite` (a path or a loaded Suite) into `out` (default: the suite's
    output.dir, else results/<suite name>); returns the output folder. `resume` continues a folder, reusing what
    is done; `overwrite` replaces ssl-bench's own entries in it."""
    from ssl_bench.engine.process_group import init_distributed
    from ssl_bench.run.suite_runner import default_out_dir
    from ssl_bench.run.suite_runner import run_suite as _run

    spec = suite if isinstance(suite, Suite) else load_suite(suite)
    folder = Path(out) if out is not None else default_out_dir(spec)
    init_distributed()  # a no-op outside torchrun
    return _run(spec, folder, resume=resume, overwrite=overwrite, progress=progress)


def load_results(*folders: str | Path) -> pd.DataFrame:
    """Every result row of these output folders (or results.jsonl files) as one frame, one row per metric."""
    from ssl_bench.report.tables import load_results as _load

    return _load([str(f) for f in folders])


def build_table(results: pd.DataFrame | str | Path, layout: str = "auto", fmt: str = "markdown", *,
                with_published: bool = False, ci: bool = False, **options) -> str:
    """The comparison tables of `results` (a frame from load_results, or an output folder) as markdown, latex,
    html or csv text; `layout` as `ssl-bench table --layout` (auto, linear, semi, transfer, ...)."""
    from ssl_bench.report.tables import render

    df = results if isinstance(results, pd.DataFrame) else load_results(results)
    return render(df, layout=layout, fmt=fmt, with_published=with_published, ci=ci, **options)


def write_report(out: str | Path) -> Path:
    """OUT/report.html: every table, plot and failure of the folder in one self-contained page."""
    from ssl_bench.report.html import write_report as _write

    return _write(str(out))
