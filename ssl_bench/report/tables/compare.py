"""`ssl-bench compare`: method a minus method b per protocol, dataset (label fraction) and metric, with the
interval of the difference, its p-value, and what it rests on (seeds, test images)."""
from __future__ import annotations

import math

import pandas as pd

from ssl_bench.errors import UserError
from ssl_bench.report.tables.aggregate import aggregate
from ssl_bench.report.tables.formats import MARKDOWN
from ssl_bench.report.tables.uncertainty import Sample, Uncertainty
from ssl_bench.report.tables.vocab import fraction_label, is_missing

KEYS = ["protocol", "eval_dataset", "label_fraction", "metric"]


def _check(df: pd.DataFrame, a: str, b: str, protocol: str | None) -> pd.DataFrame:
    methods = sorted(set(df["method"].dropna().astype(str)))
    for flag, name in (("--a", a), ("--b", b)):
        if name not in methods:
            raise UserError(f"{flag}: unknown method '{name}'; allowed: {', '.join(methods)}")
    if a == b:
        raise UserError(f"--b: bad value '{b}' (the same as --a); allowed: another method")
    df = df[df["method"].isin([a, b]) & df["metric"].notna()]
    if protocol is not None:
        present = sorted(set(df["protocol"].dropna().astype(str)))
        if protocol not in present:
            raise UserError(f"--protocol: bad value '{protocol}'; allowed: {', '.join(present)}")
        df = df[df["protocol"] == protocol]
    return df


def compare_frame(df: pd.DataFrame, a: str, b: str, protocol: str | None = None,
                  unc: Uncertainty | None = None) -> pd.DataFrame:
    """One line per (protocol, eval_dataset, label_fraction, metric) both methods have: their means, a - b,
    its interval and p (the same paired tests as the tables' tie marks), the test, seeds and test images."""
    unc = unc or Uncertainty()
    df = _check(df, a, b, protocol)
    agg = aggregate(df, ["method"], KEYS)
    lines = []
    for key, part in agg.groupby(KEYS, dropna=False, sort=False):
        by = {line["method"]: line for line in part.to_dict("records")}
        if a not in by or b not in by or by[a]["status"] != "ok" or by[b]["status"] != "ok":
            continue
        sa, sb = by[a]["_samples"], by[b]["_samples"]
        res = unc.paired(sa, sb)
        shared = sorted({s.seed for s in sa} & {s.seed for s in sb})
        lines.append({**dict(zip(KEYS, key)), "mean_a": by[a]["mean"], "mean_b": by[b]["mean"],
                      "diff": res.diff if res else by[a]["mean"] - by[b]["mean"], "lo": res.lo if res else math.nan,
                      "hi": res.hi if res else math.nan, "p": res.p if res else math.nan,
                      "test": res.test if res else _why_not(shared), "seeds": len(shared),
                      "test_images": _images(sa, sb, res)})
    if not lines:
        raise UserError(f"--a {a} / --b {b}: no protocol and dataset with ok results for both")
    return pd.DataFrame(lines)


def _why_not(shared: list) -> str:
    return "none: no shared seed" if not shared else "none: one shared seed and no saved predictions for both"


def _images(sa: tuple[Sample, ...], sb: tuple[Sample, ...], res) -> int | None:
    if res is not None and res.test == "bootstrap":
        return res.n
    counts = {s.n_test for s in sa + sb if s.n_test is not None}
    return counts.pop() if len(counts) == 1 else None


def render_compare(frame: pd.DataFrame, a: str, b: str, unc: Uncertainty) -> str:
    """The comparison as a markdown table and the line that defines its numbers."""
    level = f"{100 * unc.level:g}%"
    header = ["Protocol", "Eval data", "Labels", "Metric", a, b, f"{a} − {b} [{level} CI]", "p", "Test", "Seeds",
              "Test images"]
    body = []
    for r in frame.itertuples():
        interval = f"{r.diff:+.2f} [{r.lo:+.2f}, {r.hi:+.2f}]" if not math.isnan(r.lo) else f"{r.diff:+.2f} [n/a]"
        body.append([str(r.protocol), str(r.eval_dataset),
                     "" if is_missing(r.label_fraction) else fraction_label(r.label_fraction), str(r.metric),
                     f"{r.mean_a:.2f}", f"{r.mean_b:.2f}", interval, "–" if math.isnan(r.p) else f"{r.p:.3g}",
                     {"t": "paired t", "bootstrap": "paired bootstrap"}.get(r.test, r.test), str(r.seeds),
                     "?" if r.test_images is None or is_missing(r.test_images) else str(int(r.test_images))])
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    lines = ["| " + " | ".join(MARKDOWN.escape(x).ljust(w) for x, w in zip(row, widths)) + " |"
             for row in [header] + body]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    note = (f"{a} − {b} in points, two-sided. Over 2 or more shared seeds: mean of the per-seed differences, its "
            f"Student t {level} interval and the paired t-test (Seeds: how many). One shared seed: the paired "
            f"bootstrap over the same test images ({unc.resamples} resamples, seed {unc.seed}; percentile interval; "
            "p = (1 + #{|d* - d| >= |d|}) / (B + 1)). Means are over each method's own ok seeds.")
    return "\n".join(lines) + "\n\n" + note + "\n"
