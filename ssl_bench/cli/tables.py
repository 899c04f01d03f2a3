"""`ssl-bench table`, `ssl-bench compare` and `ssl-bench report`: comparison tables, one method against another,
and the HTML report over result folders."""
from __future__ import annotations

import argparse
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ssl_bench.errors import UserError
from ssl_bench.jsonl import write_text_atomic


def _fields(values: list[str] | None) -> list[str] | None:
    """--rows method,backbone and --rows method --rows backbone both read as [method, backbone]."""
    if values is None:
        return None
    return [f.strip() for v in values for f in v.split(",") if f.strip()]


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Show our warnings (torn line, mixed cells) as one 'warning:' line each, not with a source excerpt.

    They are printed after catch_warnings has ended: re-emitting a library warning inside it would append to
    the list being read, forever (a numpy overflow grew `ssl-bench table` past 20 GB). Repeats print once."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        seen: set[tuple[type, str]] = set()
        for w in caught:
            key = (w.category, str(w.message))
            if key in seen:
                continue
            seen.add(key)
            if issubclass(w.category, UserWarning):
                print(f"warning: {w.message}", file=sys.stderr)
            else:  # a library's deprecation notice keeps its usual form
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _check_output(output: str | None, force: bool) -> None:
    """Before anything is computed: --output must be a new file in an existing folder, unless --force (as
    `ssl-bench export` never overwrites)."""
    if output is None:
        return
    path = Path(output)
    if not path.parent.is_dir():
        raise UserError(f"--output {output}: folder {path.parent} does not exist; allowed: a file in an existing "
                        "folder")
    if path.is_dir():
        raise UserError(f"--output {output}: is a folder; allowed: a file name")
    if (path.exists() or path.is_symlink()) and not force:
        raise UserError(f"--output {output}: exists; allowed: a new file name, or --force to replace it")


def _write(text: str, output: str | None) -> None:
    if output is None:
        print(text, end="" if text.endswith("\n") else "\n")
        return
    path = Path(output)
    if not path.parent.is_dir():
        raise UserError(f"--output {output}: folder {path.parent} does not exist; allowed: a file in an existing "
                        "folder")
    write_text_atomic(path, text)  # a rename: an existing file (or a link) is replaced, never written through
    print(f"wrote {path}")


def check_layout(layout: str, plugins: list[str] | None) -> None:
    """--plugins imported (a layout may come from one), then --layout checked against the registered layouts."""
    from ssl_bench.errors import UnknownNameError
    from ssl_bench.registry import TABLE_LAYOUTS, import_plugins

    import_plugins(plugins or [], Path.cwd(), "--plugins")
    if layout not in ("compute", "summary") and layout not in TABLE_LAYOUTS:
        raise UnknownNameError("table layout", layout, [*TABLE_LAYOUTS.names(), "compute", "summary"], "--layout")


def cmd_table(args: argparse.Namespace) -> int:
    from ssl_bench.report.tables import load_results, render

    from ssl_bench.report.pending import pending_text
    from ssl_bench.report.tables.load import NoResultsYet

    _check_output(args.output, args.force)
    check_layout(args.layout, args.plugins)
    with _warnings_as_lines():
        try:
            df = load_results(args.out)
        except NoResultsYet:
            text = pending_text(args.out)
            if text is None:
                raise
            _write(text, args.output)
            return 0
        if args.layout == "summary":
            from ssl_bench.report.tables import summary

            if args.format not in ("markdown", "html"):
                raise UserError(f"--format {args.format}: --layout summary writes markdown or html; allowed: "
                                "markdown, html")
            _write(summary(df, fmt=args.format, ci=args.ci), args.output)
            return 0
        if args.layout == "compute":
            from ssl_bench.report.compute_curves import compute_tables

            if args.format != "markdown":
                raise UserError(f"--format {args.format}: --layout compute writes markdown only; allowed: markdown")
            _write(compute_tables(args.out, df), args.output)
            return 0
        text = render(df, layout=args.layout, fmt=args.format, rows=_fields(args.rows),
                      columns=_fields(args.columns), with_published=args.with_published, ci=args.ci,
                      ci_level=args.ci_level, alpha=args.alpha)
    _write(text, args.output)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ssl_bench.report.tables import load_results
    from ssl_bench.report.tables.compare import compare_frame, render_compare
    from ssl_bench.report.tables.uncertainty import Uncertainty

    if args.quality:
        from ssl_bench.report.quality_ranking import quality_text

        with _warnings_as_lines():
            _write(quality_text(load_results(args.out)), None)
        return 0
    missing = [f"--{k}" for k in ("a", "b") if getattr(args, k) is None]
    if missing:
        raise UserError(f"compare: {' and '.join(missing)} missing; allowed: --a METHOD --b METHOD, or --quality")
    with _warnings_as_lines():
        unc = Uncertainty(ci=True, level=args.ci_level)
        df = load_results(args.out)
        text = render_compare(compare_frame(df, args.a, args.b, args.protocol, unc), args.a, args.b, unc)
    _write(text, None)
    return 0


def _level_flags(p: argparse.ArgumentParser, alpha: bool = True) -> None:
    p.add_argument("--ci-level", type=float, default=0.95, metavar="L",
                   help="confidence level of the intervals (default 0.95)")
    if alpha:
        p.add_argument("--alpha", type=float, default=0.05, metavar="A",
                       help="significance level of the paired tests behind the tie marks (default 0.05)")


def cmd_report(args: argparse.Namespace) -> int:
    from ssl_bench.report.html import write_report

    _check_output(args.output, args.force)
    with _warnings_as_lines():
        path = write_report(args.out, args.output)
    print(f"report: {path}")
    return 0


def add_parsers(subparsers) -> None:
    from ssl_bench.report.tables.formats import FORMATS

    t = subparsers.add_parser("table", help="comparison tables over one or more result folders",
                              description="Mean +- std (or --ci: an interval) over seeds per method and protocol; "
                                          "best in bold; a dagger where a paired test does not tell a cell from "
                                          "the best.")
    t.add_argument("out", nargs="+", metavar="OUT", help="result folder(s) holding results.jsonl")
    t.add_argument("--layout", default="auto", metavar="NAME",
                   help="paper presets: linear (Table 1), semi (Table 2), transfer (Table 3); auto/all: every one "
                        "with results; compute: what each method cost and kNN top-1 at equal compute (markdown); "
                        "summary: the table `ssl-bench run` prints (with --ci: each cell's interval); or a plugin's "
                        "(ssl-bench list table_layouts)")
    t.add_argument("--plugins", action="append", metavar="FILE_OR_MODULE",
                   help="import a plugin first (a .py file or a module name), e.g. one that registers a layout")
    t.add_argument("--format", choices=FORMATS, default="markdown", help="output format (default markdown)")
    t.add_argument("--rows", action="append", metavar="FIELDS",
                   help="free pivot: record fields for the rows, comma-separated, e.g. method,backbone")
    t.add_argument("--columns", action="append", metavar="FIELDS",
                   help="free pivot: record fields for the columns, comma-separated, e.g. protocol,metric")
    t.add_argument("--with-published", action="store_true",
                   help="add published numbers as 'reported' rows: a delta column only against rows of the same "
                        "protocol and setting; other published rows are references, marked and named, no delta")
    t.add_argument("--ci", action="store_true",
                   help="show each cell's confidence interval instead of the std: Student t over 2+ seeds, a "
                        "bootstrap over the test images for one seed")
    _level_flags(t)
    t.add_argument("--output", metavar="FILE", help="write to FILE instead of the terminal (a new file)")
    t.add_argument("--force", action="store_true", help="let --output replace an existing file")
    t.set_defaults(func=cmd_table)

    c = subparsers.add_parser("compare", help="method a minus method b, with its interval and p-value",
                              description="a - b per protocol, dataset and metric: paired t-test over shared seeds, "
                                          "or the paired bootstrap over the test images of one shared seed.")
    c.add_argument("out", nargs="+", metavar="OUT", help="result folder(s) holding results.jsonl")
    c.add_argument("--a", metavar="METHOD", help="method label as the tables show it (needed without --quality)")
    c.add_argument("--b", metavar="METHOD", help="method label to subtract (needed without --quality)")
    c.add_argument("--quality", action="store_true",
                   help="instead: how well each label-free quality metric (RankMe, LiDAR, alpha-ReQ) ranks the runs, "
                        "as Spearman's rank correlation with their kNN and linear top-1 and its p-value")
    c.add_argument("--protocol", metavar="P", help="only this protocol (e.g. linear, knn, semi_supervised)")
    _level_flags(c, alpha=False)
    c.set_defaults(func=cmd_compare)

    r = subparsers.add_parser("report", help="one self-contained HTML page: tables and plots of a result folder")
    r.add_argument("out", metavar="OUT", help="result folder holding results.jsonl (and runs/)")
    r.add_argument("--output", metavar="FILE", help="where to write the page (default OUT/report.html, "
                                                    "rewritten each time); an existing FILE only with --force")
    r.add_argument("--force", action="store_true", help="let --output replace an existing file")
    r.set_defaults(func=cmd_report)
