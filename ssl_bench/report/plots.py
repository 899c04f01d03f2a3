"""Plots of a result folder as PNG (matplotlib Agg, no display): label fraction, training curves, transfer bars.
Result plots carry the tables' confidence intervals as error bars; training curves a band of +- one std.

Figures are built with matplotlib.figure.Figure directly (never pyplot), so no global backend or state is touched.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ssl_bench.jsonl import own_folder, write_bytes_atomic
from ssl_bench.report.run_logs import run_logs, series_name
from ssl_bench.report.styles import draw_order, series_styles, style_of
from ssl_bench.report.tables.aggregate import aggregate
from ssl_bench.report.tables.layouts import add_target, own_metric, transfer_mask, transfer_title
from ssl_bench.report.tables.uncertainty import Uncertainty
from ssl_bench.report.tables.vocab import dataset_label, sort_key

PLOTS_DIR = "plots"


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok") & df["value"].notna()]


def ci_bars(part: pd.DataFrame, by: str, unc: Uncertainty | None = None) -> pd.DataFrame:
    """Per value of `by`: the mean over seeds and how far the cell's confidence interval (the tables' --ci: Student
    t over 2+ seeds, else the bootstrap over the test images) reaches below and above it; 0 where there is none."""
    unc = unc or Uncertainty(ci=True)
    with warnings.catch_warnings():  # the tables already warn about cells that mix settings
        warnings.simplefilter("ignore")
        agg = aggregate(part, [by], [])
    bounds = [unc.interval(s)[:2] if s else (np.nan, np.nan) for s in agg["_samples"]]
    lo, hi = (np.array(b, dtype=float) for b in zip(*bounds)) if bounds else (np.array([]), np.array([]))
    mean = agg["mean"].to_numpy(dtype=float)
    lo, hi = np.clip(lo, 0.0, 100.0), np.clip(hi, 0.0, 100.0)  # percentages: as the tables show them
    out = pd.DataFrame({"mean": mean, "below": np.nan_to_num(mean - lo), "above": np.nan_to_num(hi - mean)},
                       index=agg[by].to_numpy())
    return out.sort_index()


def label_fraction_figure(df: pd.DataFrame, unc: Uncertainty | None = None,
                          styles: dict | None = None) -> Figure | None:
    """Semi-supervised top-1 against the fraction of labels (log x), mean over seeds with confidence-interval bars,
    one line per method."""
    semi = _ok(df[(df["protocol"] == "semi_supervised") & (df["metric"] == "top1")])
    if semi.empty:
        return None
    semi = semi.assign(series=series_name(semi))
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    styles = palette(semi) if styles is None else styles
    for name in draw_order(semi["series"]):  # random last: on top of supervised, which it equals here
        stats = ci_bars(semi[semi["series"] == name], "label_fraction", unc)
        ax.errorbar(stats.index * 100, stats["mean"], yerr=[stats["below"], stats["above"]], capsize=3,
                    label=name, **style_of(styles, name))
    ax.set_xscale("log")
    ticks = sorted(semi["label_fraction"].dropna().unique() * 100)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled fraction of the training set (%)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Semi-supervised fine-tuning")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def training_figure(logs: pd.DataFrame, styles: dict | None = None) -> Figure | None:
    """Loss per epoch, one panel per method (their scales differ), and kNN top-1 per epoch when logged.
    Mean over seeds with a band of +- std."""
    if logs.empty or "loss" not in logs:
        return None
    series = list(dict.fromkeys(logs["series"]))
    has_knn = "knn_top1" in logs and logs["knn_top1"].notna().any()
    panels = len(series) + int(has_knn)
    cols = min(panels, 3)
    nrows = int(np.ceil(panels / cols))
    fig = Figure(figsize=(4 * cols, 3 * nrows), dpi=100)
    axes = [fig.add_subplot(nrows, cols, i + 1) for i in range(panels)]
    styles = series_styles(series) if styles is None else styles
    colors = {s: style_of(styles, s)["color"] for s in series}
    for ax, name in zip(axes, series):
        _curve(ax, logs[logs["series"] == name], "loss", colors[name], name)
        ax.set_title(f"{name}: training loss", fontsize=9)
        ax.set_ylabel("loss")
    if has_knn:
        ax = axes[-1]
        for name in draw_order(series):
            part = logs[(logs["series"] == name) & logs["knn_top1"].notna()]
            if not part.empty:
                _curve(ax, part, "knn_top1", colors[name], name)
        ax.set_title("kNN top-1 during pretraining", fontsize=9)
        ax.set_ylabel("top-1 (%)")
        ax.legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _curve(ax, part: pd.DataFrame, col: str, color: str, label: str) -> None:
    stats = part.groupby("epoch")[col].agg(["mean", "std"]).sort_index()
    x = stats.index.to_numpy() + 1  # epochs are logged 0-based
    ax.plot(x, stats["mean"], color=color, label=label)
    if stats["std"].notna().any():
        std = stats["std"].fillna(0)
        ax.fill_between(x, stats["mean"] - std, stats["mean"] + std, color=color, alpha=0.2)


def transfer_figure(df: pd.DataFrame, unc: Uncertainty | None = None,
                    styles: dict | None = None) -> Figure | None:
    """Grouped bars per transfer dataset (its own metric), one bar per method, one panel per transfer protocol;
    error bars: the confidence interval of each mean (see ci_bars)."""
    df = add_target(df)
    tr = _ok(df[transfer_mask(df)])
    if tr.empty:
        return None
    tr = own_metric(tr).assign(series=lambda d: series_name(d))
    styles = palette(tr) if styles is None else styles
    protocols = list(dict.fromkeys(tr["protocol"]))
    fig = Figure(figsize=(max(6, 1.2 * tr["eval_dataset"].nunique() + 3), 3.5 * len(protocols)), dpi=100)
    for i, protocol in enumerate(protocols):
        ax = fig.add_subplot(len(protocols), 1, i + 1)
        part = tr[tr["protocol"] == protocol]
        seen = {d: i for i, d in enumerate(part["eval_dataset"].unique())}
        sets = sorted(seen, key=lambda d: sort_key("eval_dataset", d, seen))  # the datasets' declared order
        series = list(dict.fromkeys(part["series"]))
        width = 0.8 / len(series)
        for j, name in enumerate(series):
            stats = ci_bars(part[part["series"] == name], "eval_dataset", unc).reindex(sets)
            x = np.arange(len(sets)) + (j - (len(series) - 1) / 2) * width
            ax.bar(x, stats["mean"], width, yerr=[stats["below"].fillna(0), stats["above"].fillna(0)], capsize=2,
                   label=name, color=style_of(styles, name)["color"],
                   hatch="//" if style_of(styles, name)["linestyle"] == "--" else None)
        metrics = part.groupby("eval_dataset")["metric"].first()
        ax.set_xticks(np.arange(len(sets)))
        ax.set_xticklabels([dataset_label(d, metrics[d]).replace(" (", "\n(") for d in sets], fontsize=8)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(transfer_title(protocol), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def palette(df: pd.DataFrame) -> dict[str, dict]:
    """One style per series of these records, in the tables' method order (declared names, then first seen)."""
    if df.empty:
        return {}
    seen = {m: i for i, m in enumerate(dict.fromkeys(df["method"]))}
    order = sorted(range(len(df)), key=lambda i: sort_key("method", df["method"].iloc[i], seen))
    return series_styles(series_name(df).iloc[order])


def make_figures(out_dir: str | Path, df: pd.DataFrame) -> dict[str, Figure]:
    """Every plot the folder has data for, by file stem; one colour per method across all of them."""
    unc = Uncertainty(ci=True)  # one for both plots: each evidence file is resampled once
    styles = palette(df)
    figs = {"label_fraction": label_fraction_figure(df, unc, styles), "transfer": transfer_figure(df, unc, styles)}
    try:
        from ssl_bench.report.compute_curves import compute_figure, curves

        figs["training"] = training_figure(run_logs(out_dir, df), styles)
        figs["compute"] = compute_figure(curves(out_dir, df), styles)
    except (OSError, ValueError, KeyError) as exc:  # a damaged log must not cost the tables
        warnings.warn(f"training curves skipped: {exc}", stacklevel=2)
    return {k: v for k, v in figs.items() if v is not None}


def write_plots(out_dir: str | Path, df: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write OUT/plots/<name>.png for each plot with data; returns {name: path}."""
    from ssl_bench.report.tables import load_results

    df = load_results([str(out_dir)]) if df is None else df
    dest = Path(out_dir) / PLOTS_DIR
    figs = make_figures(out_dir, df)
    if figs:
        own_folder(dest)
    paths = {}
    for name, fig in figs.items():
        paths[name] = dest / f"{name}.png"
        write_bytes_atomic(paths[name], png_bytes(fig))  # a link at the name is replaced, never followed
    return paths
