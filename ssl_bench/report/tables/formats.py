"""Grids written as markdown, LaTeX (booktabs) or HTML; the CSV format is the tidy frame itself."""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Callable

from ssl_bench.report.tables.grid import REFERENCE_MARK, Cell, Grid
from ssl_bench.report.tables.uncertainty import NO_EVIDENCE

FORMATS = ("markdown", "latex", "csv", "html")


@dataclass(frozen=True)
class Style:
    escape: Callable[[str], str]
    pm: str
    dash: str
    dagger: str
    bold: Callable[[str], str]
    delta: str


def _latex_escape(s: str) -> str:
    table = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
             "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$",
             "†": r"$^\dagger$", "‡": r"$^\ddagger$", "–": "--", "α": r"$\alpha$"}
    return "".join(table.get(ch, ch) for ch in s)


MARKDOWN = Style(lambda s: s.replace("|", "\\|"), "±", "–", "†", lambda s: f"**{s}**", "Δ")
LATEX = Style(_latex_escape, r"$\pm$", "--", r"$^\dagger$", lambda s: rf"\textbf{{{s}}}", r"$\Delta$")
HTML = Style(html.escape, "±", "&ndash;", "<sup>&dagger;</sup>", lambda s: f"<b>{s}</b>", "&Delta;")


def _num(v: float, decimals: int, reported: bool = False) -> str:
    if reported and round(v, decimals) != round(v, 6):  # keep a source's own precision (92.58)
        decimals = 2
    return f"{v:.{decimals}f}"


def clip_percent(lo: float, hi: float) -> tuple[float, float]:
    """An interval as shown: every metric is a percentage (ssl_bench.metrics), so a Student t interval over two
    or three seeds reaching past 0 or 100 is cut there on display; the CSV keeps the raw bounds."""
    return max(lo, 0.0), min(hi, 100.0)


def cell_text(c: Cell, st: Style, n_max: int, decimals: int = 1) -> str:
    if c.kind == "missing":
        return st.dash
    if c.kind == "delta":
        return f"{c.mean:+.{decimals}f}"
    if c.status != "ok" or math.isnan(c.mean):
        return st.escape(c.status)
    text = _num(c.mean, decimals, c.reported)
    if c.ci_method in ("t", "bootstrap"):  # --ci: the interval replaces the std
        lo, hi = clip_percent(c.ci_lo, c.ci_hi)
        text += f" [{_num(lo, decimals)}, {_num(hi, decimals)}]"
    elif c.ci_method == NO_EVIDENCE:
        text += " [n/a]"
    elif not math.isnan(c.std):
        text += f" {st.pm} {_num(c.std, decimals)}"
    if c.best:
        text = st.bold(text)
    if c.tied:
        text += st.dagger
    if not c.reported and c.n < n_max:
        text += f" (n={c.n})"
    for count, word in ((c.n_failed, "failed"), (c.n_collapsed, "collapsed"), (c.n_invalid, "invalid")):
        if count:
            text += st.escape(f" [{count} {word}]")
    return text


def footnote(g: Grid, st: Style) -> str:
    """The one line under a table that explains its marks."""
    parts = [_spread(g, st),
             f"{st.bold('bold')}: best of our runs in its column",
             _tie_rule(g, st),
             f"{st.dash}: no result",
             "failed: every seed failed; collapsed: every seed's encoder collapsed; [k failed]: k seeds left out"]
    if any(c.n_invalid for line in g.cells for c in line):
        parts.append("invalid: a result row that is not a valid measurement (named in a warning), left out")
    if g.sources:
        parts.append("reported: a published number, not run here")
    if g.has_delta:
        parts.append(f"{st.delta}: our mean minus the reported number of the same method (its plugin), protocol "
                     "and setting (backbone, pretraining data, epochs and batch, dataset, metric, label fraction) "
                     "and evaluation recipe (every field the source states)")
    if g.has_reference:
        parts.append(f"{st.escape(REFERENCE_MARK)}: reported with a protocol, setting or evaluation recipe that none "
                     f"of our rows here shares: shown for reference, no {st.delta} (its evaluation, and the recipe "
                     "fields that differ from ours, are named below)")
    line = "; ".join(parts) + "."
    extra = [st.escape(n) for n in g.notes] + [st.escape(f"[{i}] {s}.") for i, s in enumerate(g.sources, 1)]
    return " ".join([line] + extra)


def _spread(g: Grid, st: Style) -> str:
    """What follows each mean: the std (default) or, with --ci, the interval and how it was computed."""
    u = g.uncertainty
    if not u.get("ci"):
        return (f"Mean {st.pm} sample std over {g.n_max} seeds ((n=k): fewer seeds)" if g.n_max > 1
                else "One seed per cell (no std)")
    methods = {c.ci_method for line in g.cells for c in line}
    text = [f"Mean [{100 * u['level']:g}% CI]"]
    if "t" in methods:
        text.append(f"a Student t interval over seeds (2 or more seeds, up to {g.n_max} here; (n=k): fewer seeds)")
    if "bootstrap" in methods:
        text.append(f"with one seed, a percentile bootstrap interval over the test images ({u['resamples']} "
                    f"resamples, seed {u['seed']})")
    if NO_EVIDENCE in methods:
        text.append("[n/a]: one seed and no saved per-image predictions, so no interval")
    return st.escape(": ".join(text[:2]) + ("; " + "; ".join(text[2:]) if text[2:] else ""))


def _tie_rule(g: Grid, st: Style) -> str:
    """The tie mark's definition, naming the tests that decided this table's marks."""
    u = g.uncertainty
    alpha = u.get("alpha", 0.05)
    tests = set(u.get("tests", ()))
    names = {"t": "a two-sided paired t-test over the seeds both share",
             "bootstrap": (f"a paired bootstrap over the same test images of their one shared seed "
                           f"({u.get('resamples', 1000)} resamples, two-sided)")}
    used = [names[t] for t in ("t", "bootstrap") if t in tests] or list(names.values())
    text = f"not significantly different from the best at α = {alpha:g} ({' / '.join(used)})"
    if "none" in tests:
        text += "; a cell that could not be tested (no shared seed, or no saved predictions) has no mark"
    return f"{st.dagger}: {st.escape(text)}"


def markdown(grids: list[Grid], decimals: int = 1) -> str:
    out = []
    for g in grids:
        header = g.row_header + g.col_labels
        body = [[MARKDOWN.escape(x) for x in labels] + [cell_text(c, MARKDOWN, g.n_max, decimals) for c in cells]
                for labels, cells in zip(g.row_labels, g.cells)]
        widths = [max(len(str(r[i])) for r in [header] + body) for i in range(len(header))]
        nrow = len(g.row_header)

        def line(vals: list[str]) -> str:
            return "| " + " | ".join(v.ljust(w) if i < nrow else v.rjust(w)
                                     for i, (v, w) in enumerate(zip(vals, widths))) + " |"

        rule = "|" + "|".join((":" + "-" * (w + 1)) if i < nrow else ("-" * (w + 1) + ":")
                              for i, w in enumerate(widths)) + "|"
        block = ([f"### {g.title}", ""] if g.title else []) + [line(header), rule] + [line(r) for r in body]
        out.append("\n".join(block + ["", footnote(g, MARKDOWN)]))
    return "\n\n".join(out) + "\n"


def latex(grids: list[Grid], decimals: int = 1) -> str:
    out = ["% Requires \\usepackage{booktabs} in the preamble."]
    for g in grids:
        spec = "l" * len(g.row_header) + "c" * len(g.col_labels)
        header = [LATEX.escape(x) for x in g.row_header + g.col_labels]
        lines = [r"\begin{table}[t]", r"\centering"]
        if g.title:
            lines.append(rf"\caption{{{LATEX.escape(g.title)}}}")
        lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
        reported_started = False
        for labels, cells in zip(g.row_labels, g.cells):
            if cells and any(c.reported for c in cells) and not reported_started:
                reported_started = True
                lines.append(r"\midrule")
            vals = [LATEX.escape(x) for x in labels] + [cell_text(c, LATEX, g.n_max, decimals) for c in cells]
            lines.append(" & ".join(vals) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip",
                  rf"{{\footnotesize {footnote(g, LATEX)}}}", r"\end{table}"]
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def html_tables(grids: list[Grid], decimals: int = 1) -> str:
    out = []
    for g in grids:
        nrow = len(g.row_header)
        lines = ['<table class="ssl-table">']
        if g.title:
            lines.append(f"<caption>{html.escape(g.title)}</caption>")
        lines.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in g.row_header + g.col_labels)
                     + "</tr></thead>")
        lines.append("<tbody>")
        for labels, cells in zip(g.row_labels, g.cells):
            cls = ' class="reported"' if any(c.reported for c in cells) else ""
            tds = [f'<td class="key">{html.escape(x)}</td>' for x in labels[:nrow]]
            tds += [f"<td>{cell_text(c, HTML, g.n_max, decimals)}</td>" for c in cells]
            lines.append(f"<tr{cls}>" + "".join(tds) + "</tr>")
        lines += ["</tbody>", "</table>", f'<p class="footnote">{footnote(g, HTML)}</p>']
        out.append("\n".join(lines))
    return "\n".join(out) + "\n"
