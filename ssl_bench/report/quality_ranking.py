"""How well each label-free quality metric ranks a suite's runs: Spearman's rank correlation, over runs, of the
metric against the runs' kNN and linear top-1 (`ssl-bench compare OUT --quality`, and a section of the report).

One point per run (run_id) that has both numbers on the same evaluation dataset: the quality value (mean over
the run's quality rows of that metric, should a suite list quality twice) against the protocol's top-1 (idem).
rho and its two-sided p-value are scipy.stats.spearmanr's (p from the t distribution with n - 2 degrees of
freedom); fewer than 3 runs, or a constant column, give no correlation.
"""
from __future__ import annotations

import html
import math

import pandas as pd
from scipy import stats as sps

from ssl_bench.errors import UserError
from ssl_bench.report.tables.formats import MARKDOWN

QUALITY = ("rankme", "lidar", "alpha_req")
LABELS = {"rankme": "RankMe", "lidar": "LiDAR", "alpha_req": "alpha-ReQ"}
TARGETS = (("knn", "kNN top-1"), ("linear", "Linear top-1"), ("linear_sgd", "Linear (SGD) top-1"),
           ("attentive_probe", "Attentive top-1"))
MIN_RUNS = 3
NOTE = ("Spearman's rank correlation over runs (one point per run with both numbers on that dataset) and its "
        "two-sided p-value (scipy.stats.spearmanr: t distribution, n - 2 degrees of freedom); a positive rho "
        f"means the metric orders the runs as the probe does. Fewer than {MIN_RUNS} runs or a constant column: "
        "no correlation (n/a).")


def _per_run(df: pd.DataFrame, protocol: str, metric: str) -> pd.DataFrame:
    part = df[(df["protocol"] == protocol) & (df["metric"] == metric) & (df["status"] == "ok")]
    return part.groupby(["eval_dataset", "run_id"])["value"].mean().rename(f"{protocol}/{metric}").reset_index()


def quality_correlations(df: pd.DataFrame) -> pd.DataFrame:
    """One line per (quality metric, probe, eval dataset): n runs, rho, p."""
    lines = []
    for q in QUALITY:
        qv = _per_run(df, "quality", q)
        if qv.empty:
            continue
        for protocol, label in TARGETS:
            tv = _per_run(df, protocol, "top1")
            if tv.empty:
                continue
            both = qv.merge(tv, on=["eval_dataset", "run_id"])
            for ds, part in both.groupby("eval_dataset", sort=True):
                x, y = part[f"quality/{q}"].to_numpy(float), part[f"{protocol}/top1"].to_numpy(float)
                rho = p = math.nan
                if len(part) >= MIN_RUNS and x.std() > 0 and y.std() > 0:
                    res = sps.spearmanr(x, y)
                    rho, p = float(res.statistic), float(res.pvalue)
                lines.append({"metric": q, "probe": protocol, "probe_label": label, "eval_dataset": ds,
                              "n_runs": len(part), "rho": rho, "p": p})
    return pd.DataFrame(lines, columns=["metric", "probe", "probe_label", "eval_dataset", "n_runs", "rho", "p"])


def _cells(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["Quality metric", "Probe", "Eval data", "Runs", "Spearman rho", "p"]
    body = [[LABELS.get(r.metric, r.metric), r.probe_label, str(r.eval_dataset), str(r.n_runs),
             "n/a" if math.isnan(r.rho) else f"{r.rho:+.3f}", "n/a" if math.isnan(r.p) else f"{r.p:.3g}"]
            for r in frame.itertuples()]
    return header, body


def render_quality(frame: pd.DataFrame, fmt: str = "markdown") -> str:
    """The correlations as a markdown table (or an HTML table) and the note that defines them."""
    header, body = _cells(frame)
    if fmt == "html":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        rows = "".join("<tr>" + "".join(f'<td class="key">{html.escape(c)}</td>' if i < 3 else
                                        f"<td>{html.escape(c)}</td>" for i, c in enumerate(r)) + "</tr>" for r in body)
        return (f'<table class="ssl-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
                f'<p class="footnote">{html.escape(NOTE)}</p>')
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    lines = ["| " + " | ".join(MARKDOWN.escape(x).ljust(w) for x, w in zip(row, widths)) + " |"
             for row in [header] + body]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines) + "\n\n" + NOTE + "\n"


def quality_text(df: pd.DataFrame) -> str:
    """`compare --quality`: the table, or a one-line error when the folders hold no quality rows beside a probe."""
    frame = quality_correlations(df)
    if frame.empty:
        present = ", ".join(sorted(df["protocol"].dropna().astype(str).unique()))
        raise UserError(f"--quality: no run has both quality rows (evaluation quality) and kNN or linear top-1; "
                        f"protocols present: {present}")
    return render_quality(frame)
