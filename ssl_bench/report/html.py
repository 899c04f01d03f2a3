"""`ssl-bench report OUT`: one self-contained HTML page (tables, plots as inline PNG, failures, versions)."""
from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ssl_bench.errors import UserError
from ssl_bench.jsonl import own_folder, write_bytes_atomic, write_text_atomic
from ssl_bench.report.plots import PLOTS_DIR, make_figures, png_bytes
from ssl_bench.report.tables.notes import hardware_notes

REPORT_FILE = "report.html"
CAPTIONS = {"training": "Training loss per epoch (mean over seeds, band: +- one std over seeds) and kNN top-1 when "
                         "logged.",
            "label_fraction": "Semi-supervised top-1 against the fraction of labels (mean over seeds, bars: 95% "
                              "confidence intervals).",
            "transfer": "Transfer: each dataset's own metric per method (mean over seeds, bars: 95% confidence "
                        "intervals).",
            "compute": "kNN top-1 of the kNN monitor during pretraining against images seen and against pretraining "
                       "seconds, one line per run."}
_BARS = ("bars are 95% confidence intervals of the mean (Student t over seeds; with one seed, a bootstrap over the "
         "test images; no bar: one seed without saved predictions). Overlapping bars do not make two methods "
         "equal: the tables' † marks and `ssl-bench compare` use paired tests (same seeds, same test images).")
HOW_TO_READ = {"training": "each method has its own loss, so compare the shape of a curve (still falling, flat, "
                           "diverging), not its height against another method's; the kNN panel is comparable across "
                           "methods (higher is better). The band is the spread over seeds, not a confidence interval.",
               "label_fraction": "higher is better; the gap between lines at 1% of labels is what the pretraining "
                                 "adds when labels are scarce; " + _BARS,
               "transfer": "higher is better; compare bars within one dataset (datasets differ in difficulty and "
                           "metric); " + _BARS,
               "compute": "a method that is higher at the same x learns more per image (left) or per second on this "
                          "machine (right); an epoch costs methods differently (BYOL and MoCo run a target "
                          "network), so compare here rather than at equal epochs; `ssl-bench table OUT --layout "
                          "compute` gives the numbers at equal compute."}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table.ssl-table { border-collapse: collapse; margin: 1em 0 0.3em; font-size: 0.92em; }
table.ssl-table caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
table.ssl-table th, table.ssl-table td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }
table.ssl-table th { border-bottom: 2px solid #444; }
table.ssl-table td.key { text-align: left; }
table.ssl-table tr.reported td { color: #555; font-style: italic; }
p.footnote { font-size: 0.8em; color: #555; max-width: 60em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; } figcaption { font-size: 0.85em; color: #555; }
figcaption .how { font-style: italic; }
pre { background: #f6f6f6; padding: 0.5em; white-space: pre-wrap; font-size: 0.8em; }
"""


def _img(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    how = f'<br><span class="how">How to read this: {html.escape(HOW_TO_READ[name])}</span>' \
        if name in HOW_TO_READ else ""
    return (f'<figure><img alt="{html.escape(name)} plot" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(CAPTIONS.get(name, name))}{how}</figcaption></figure>")


def _failures(df: pd.DataFrame) -> str:
    bad = df[df["status"] != "ok"].drop_duplicates(subset=["run_id", "protocol", "eval_dataset", "status"])
    if bad.empty:
        return "<p>Every evaluation finished.</p>"
    rows = "".join(
        f'<tr><td class="key">{html.escape(str(r.run_id))}</td><td class="key">{html.escape(str(r.protocol))}</td>'
        f'<td class="key">{html.escape(str(r.eval_dataset))}</td><td class="key">{html.escape(str(r.status))}</td>'
        f'<td class="key">{html.escape(str(r.error or ""))}</td></tr>' for r in bad.itertuples())
    return ('<table class="ssl-table"><thead><tr><th>Run</th><th>Protocol</th><th>Eval data</th><th>Status</th>'
            f"<th>Error</th></tr></thead><tbody>{rows}</tbody></table>")


def _versions(df: pd.DataFrame) -> str:
    if "versions" not in df:
        return ""
    seen = {str(sorted(v.items())): v for v in df["versions"] if isinstance(v, dict) and v}
    lines = ["; ".join(f"{k} {v}" for k, v in sorted(d.items())) for d in seen.values()]
    return "<pre>" + html.escape("\n".join(lines)) + "</pre>" if lines else ""


def build_report(out_dir: str | Path) -> tuple[str, dict[str, bytes]]:
    """The page and the PNG bytes of its plots."""
    from ssl_bench.report.tables import load_results, render, summary

    df = load_results([str(out_dir)])
    suites = ", ".join(sorted(df["suite"].dropna().astype(str).unique())) or Path(out_dir).name
    pngs = {name: png_bytes(fig) for name, fig in make_figures(out_dir, df).items()}
    n_runs = df["run_id"].nunique()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>ssl-bench report: {html.escape(suites)}</h1>",
            f"<p>Folder <code>{html.escape(str(out_dir))}</code>; {n_runs} pretraining runs, {len(df)} result "
            f"records; generated {stamp}.</p>",
            *[f'<p class="hardware">{html.escape(n)}</p>' for n in hardware_notes(df)],
            "<h2>Summary</h2>", summary(df, fmt="html"),
            "<h2>Tables</h2>", render(df, layout="auto", fmt="html", with_published=True, ci=True)]
    from ssl_bench.report.compute_curves import cost_html

    from ssl_bench.report.quality_ranking import quality_correlations, render_quality

    quality = quality_correlations(df)
    if not quality.empty:
        body += ["<h2>Label-free quality against the probes</h2>", render_quality(quality, fmt="html")]
    cost = cost_html(df)
    if cost:
        body += ["<h2>Compute</h2>", cost]
    if pngs:
        body += ["<h2>Plots</h2>"] + [_img(name, png) for name, png in pngs.items()]
    body += ["<h2>Failures</h2>", _failures(df)]
    versions = _versions(df)
    if versions:
        body += ["<h2>Versions</h2>", versions]
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>ssl-bench report: {html.escape(suites)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
    return page, pngs


def write_report(out_dir: str, output: str | None = None) -> Path:
    """Write OUT/report.html (or `output`) and OUT/plots/*.png; returns the page's path."""
    if not Path(out_dir).is_dir():
        raise UserError(f"result folder {out_dir}: not found; allowed: a folder written by `ssl-bench run`")
    from ssl_bench.report.pending import pending_page, pending_text
    from ssl_bench.report.tables.load import NoResultsYet

    try:
        page, pngs = build_report(out_dir)
    except NoResultsYet:
        text = pending_text([str(out_dir)])
        if text is None:
            raise
        page, pngs = pending_page(out_dir, text), {}
    path = Path(output) if output else Path(out_dir) / REPORT_FILE
    if not path.parent.is_dir():
        raise UserError(f"--output {output}: folder {path.parent} does not exist; allowed: a file in an existing "
                        "folder")
    write_text_atomic(path, page)  # temporary + rename: a link at report.html is replaced, never followed
    if pngs:
        plots = own_folder(Path(out_dir) / PLOTS_DIR)
        for name, png in pngs.items():
            write_bytes_atomic(plots / f"{name}.png", png)
    return path
