"""Accuracy against compute: the kNN monitor's curve of each run over images seen and wall time, the report's
plot of it, and the `--layout compute` tables (what each run cost; kNN top-1 at equal compute).

Equal compute is read off the curves: for each axis (images seen, pretraining seconds) the level is the largest
one every method reached, and each run's kNN top-1 there is linearly interpolated between its two nearest
monitored epochs (stated as such in the table's note); methods are the mean over their seeds.
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ssl_bench.errors import UserError
from ssl_bench.report.run_logs import run_logs

AXES = {"images_seen": "images seen", "wall_s": "pretraining seconds"}
COST = {"compute_images_seen": "images seen", "compute_steps": "steps", "compute_wall_s": "wall s",
        "compute_flops_per_image": "GFLOPs / image", "compute_peak_memory_mb": "peak MB"}


def curves(out_dir: str | Path, df: pd.DataFrame) -> pd.DataFrame:
    """One line per monitored epoch: run, method, images_seen, wall_s (cumulative) and knn_top1."""
    logs = run_logs(out_dir, df)
    if logs.empty or "knn_top1" not in logs:
        return pd.DataFrame(columns=["run", "method", "images_seen", "wall_s", "knn_top1"])
    batch = df.dropna(subset=["run_id"]).drop_duplicates("run_id").set_index("run_id").get("batch_size")
    frames = []
    for run, part in logs.groupby("run", sort=False):
        part = part.sort_values("epoch")
        size = batch.get(run) if batch is not None else None
        if size is None or pd.isna(size):
            continue  # a record without its batch size cannot say how many images a step saw
        frames.append(pd.DataFrame({"run": run, "method": part["series"], "images_seen": part["step"] * int(size),
                                    "wall_s": part["time_s"].cumsum(), "knn_top1": part["knn_top1"]}))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return out.dropna(subset=["knn_top1"]) if not out.empty else out


def compute_figure(cv: pd.DataFrame, styles: dict | None = None) -> Figure | None:
    if cv.empty:
        return None
    from ssl_bench.report.styles import draw_order, series_styles, style_of

    styles = series_styles(cv["method"]) if styles is None else styles
    fig = Figure(figsize=(9, 3.4), dpi=100)
    methods = draw_order(cv["method"])
    for i, (axis, label) in enumerate(AXES.items()):
        ax = fig.add_subplot(1, 2, i + 1)
        for m in methods:
            for k, (_, run) in enumerate(cv[cv["method"] == m].groupby("run", sort=False)):
                ax.plot(run[axis], run["knn_top1"], ms=3, label=m if k == 0 else None, **style_of(styles, m))
        ax.set_xlabel(label)
        ax.set_ylabel("kNN top-1 (%)")
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=7)
    fig.suptitle("kNN top-1 during pretraining against compute", fontsize=10)
    fig.tight_layout()
    return fig


def at_equal_compute(cv: pd.DataFrame, axis: str) -> tuple[float, pd.Series]:
    """(the level every method reached on `axis`, each method's mean kNN top-1 interpolated there)."""
    reach = cv.groupby("method")[axis].max()
    level = float(reach.min())
    per_run = {run: (part["method"].iloc[0], float(np.interp(level, part[axis], part["knn_top1"])))
               for run, part in cv.sort_values(axis).groupby("run", sort=False)}
    values = pd.DataFrame(per_run.values(), columns=["method", "v"]).groupby("method", sort=False)["v"].mean()
    return level, values


def cost_summary(df: pd.DataFrame) -> pd.DataFrame | None:
    """Mean cost per method over its runs (GFLOPs per image); None for records without compute fields."""
    cost = df.dropna(subset=["run_id"]).drop_duplicates("run_id")
    cols = [c for c in COST if c in cost]
    if not cols:
        return None
    summary = cost.groupby("method", sort=False)[cols].mean(numeric_only=True)
    if "compute_flops_per_image" in summary:
        summary["compute_flops_per_image"] = summary["compute_flops_per_image"] / 1e9
    return summary


def cost_html(df: pd.DataFrame) -> str:
    summary = cost_summary(df)
    if summary is None:
        return ""
    head = "".join(f"<th>{COST[c]}</th>" for c in summary.columns)
    body = "".join(f'<tr><td class="key">{html.escape(str(m))}</td>' + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
                   for m, row in summary.iterrows())
    return (f'<table class="ssl-table"><caption>Compute per method (mean over runs): what pretraining cost; '
            f"compare methods at equal compute with <code>ssl-bench table OUT --layout compute</code></caption>"
            f"<tr><th>Method</th>{head}</tr>{body}</table>")


def compute_tables(dirs: list[str], df: pd.DataFrame) -> str:
    """Markdown: what each method's pretraining cost, then kNN top-1 at equal images seen and equal time."""
    summary = cost_summary(df)
    if summary is None:
        raise UserError("--layout compute: these records carry no compute fields; allowed: results written by "
                        "ssl-bench 0.2 or later")
    cols = list(summary.columns)
    lines = ["Compute per method (mean over runs)", "", "| Method | " + " | ".join(COST[c] for c in cols) + " |",
             "|:--|" + "--:|" * len(cols)]
    lines += [f"| {m} | " + " | ".join(_fmt(v) for v in row) + " |" for m, row in summary.iterrows()]
    cv = pd.concat([curves(d, df[df["out_dir"] == d]) for d in dirs], ignore_index=True) if dirs else pd.DataFrame()
    if cv.empty:
        return "\n".join(lines + ["", "No kNN curves: set `pretrain.knn_monitor` to compare at equal compute."]) + "\n"
    lines += ["", "kNN top-1 at equal compute", "", "| Method | " + " | ".join(
        f"at {_fmt(at_equal_compute(cv, a)[0])} {AXES[a]}" for a in AXES) + " | final |", "|:--|--:|--:|--:|"]
    final = cv.sort_values("images_seen").groupby("run").tail(1).groupby("method", sort=False)["knn_top1"].mean()
    eq = {a: at_equal_compute(cv, a)[1] for a in AXES}
    lines += [f"| {m} | {eq['images_seen'][m]:.1f} | {eq['wall_s'][m]:.1f} | {final[m]:.1f} |" for m in final.index]
    lines += ["", "kNN top-1 of the kNN monitor (pretrain.knn_monitor), linearly interpolated along each run's curve "
              "at the largest images seen / pretraining seconds every method reached; mean over seeds."]
    return "\n".join(lines) + "\n"


def _fmt(v: float) -> str:
    if v is None or pd.isna(v):
        return "–"
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.3g}"
